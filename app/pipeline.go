package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	wmmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/claim"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/delivery"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/httpapi"
	"github.com/orderflow/orderflow/internal/wmlog"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/metrics"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/status"
	"github.com/orderflow/orderflow/tracing"
)

// Options select what a pipeline process runs.
type Options struct {
	// Only names the handlers to run; empty runs every enabled one.
	Only   []string
	Logger *slog.Logger
	// Metrics collects the process's metrics; nil makes new ones.
	Metrics *metrics.Metrics
	// SpanExporter, when set with tracing enabled, receives the spans
	// instead of the configured exporter (tests).
	SpanExporter sdktrace.SpanExporter
}

// Pipeline is one router process: the configured handlers, consuming Kafka in
// their consumer groups, with the status of every line kept in MongoDB.
// Several processes with the same configuration share the partitions.
type Pipeline struct {
	cfg      *config.Config
	log      *slog.Logger
	kafka    *kafkaclient.Kafka
	mongo    *mongoclient.Conn
	router   *message.Router
	pub      message.Publisher
	recorder *status.Recorder
	// claims knows the first copy of every line read from a source topic
	// (nil when no handler reads one).
	claims *claim.Store
	cache  *metastore.Cache
	view   *status.View
	held   *middleware.HeldLines // lines redeliver_forever handlers keep failing
	// lookups bounds the reads of one order's records made while lines
	// flow (delivery's straggler checks, the view's resolver): each reads
	// the records, so after a crash hundreds at once took every connection
	// the status writes need.
	lookups chan struct{}
	groups  *groupHealth // every group of the configuration, seen from the broker
	reader  *status.Reader
	// current reads the order_status view when it is kept (nil if not).
	current *status.ViewReader
	// aggregators run beside the router, flushing their state.
	aggregators []*aggregate.Aggregator
	handlers    []string
	metrics     *metrics.Metrics
	subs        []message.Subscriber
	http        *httpapi.Server
	admin       *kgo.Client // readiness checks
	closing     atomic.Bool
	stopping    chan struct{} // closed when the shutdown starts
	// stopCtx ends when the shutdown has waited long enough for writes
	// that retry through a MongoDB outage.
	stopCtx    context.Context
	stopWrites context.CancelFunc
	// stopTracing flushes the spans, when tracing is on.
	stopTracing func(context.Context) error
}

// NewPipeline connects to Kafka and MongoDB, creates the topics, loads the
// metadata and wires the handlers. Run starts them.
func NewPipeline(ctx context.Context, cfg *config.Config, opts Options) (p *Pipeline, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	p = &Pipeline{cfg: cfg, log: log, stopping: make(chan struct{}), metrics: opts.Metrics, held: middleware.NewHeldLines(),
		lookups: make(chan struct{}, maxOrderLookups)}
	p.stopCtx, p.stopWrites = context.WithCancel(context.Background())
	if p.metrics == nil {
		p.metrics = metrics.New()
	}
	// p is nil on an error return: release what was opened through a copy.
	opened := p
	defer func() {
		if err != nil {
			opened.release()
		}
	}()
	if err := cfg.CheckOnly(opts.Only); err != nil {
		return nil, err
	}
	if cfg.Tracing.Enabled {
		if p.stopTracing, err = tracing.Setup(ctx, tracing.Config{
			Exporter: cfg.Tracing.Exporter, Endpoint: cfg.Tracing.Endpoint, ServiceName: cfg.Tracing.ServiceName,
		}, opts.SpanExporter); err != nil {
			return nil, err
		}
	}
	if p.kafka, err = kafkaclient.New(cfg.Kafka, false, log); err != nil {
		return nil, err
	}
	instanceID, err := p.kafka.InstanceID()
	if err != nil {
		return nil, err
	}
	if instanceID != "" {
		log.Info("static member of the consumer groups", "instance_id", instanceID)
	}
	if p.mongo, err = mongoclient.Connect(cfg.MongoDB, func(name string) { p.metrics.MongoCommands.WithLabelValues(name).Inc() }); err != nil {
		return nil, err
	}
	if p.admin, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...)}, p.kafka.ClientOptions()...)...); err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	if err := p.kafka.EnsureTopics(ctx, cfg.Topics); err != nil {
		return nil, fmt.Errorf("create topics: %w", err)
	}
	events := p.mongo.DB.Collection(status.Collection)
	if err := status.EnsureIndexes(ctx, events); err != nil {
		return nil, fmt.Errorf("prepare order status collection: %w", err)
	}
	p.cache, err = metastore.NewCache(metastore.NewStore(p.mongo.DB), metastore.CacheConfig{
		RefreshInterval:       cfg.Metadata.RefreshInterval.Duration,
		MissRefreshInterval:   cfg.Metadata.MissRefreshInterval.Duration,
		VersionPollInterval:   cfg.Metadata.VersionPollInterval.Duration,
		UnknownReferenceGrace: cfg.Metadata.UnknownReferenceGrace.Duration,
		Stopping:              p.stopping,
		Logger:                log,
	})
	if err != nil {
		return nil, err
	}
	if err := p.cache.Load(ctx); err != nil {
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	if err := p.cache.Ready(); err != nil {
		log.Warn("not ready until the metadata is loaded: lines wait up to metadata.unknown_reference_grace for it", "reason", err)
	}
	p.metrics.Registry.MustRegister(metastore.NewCollector(p.cache))
	p.reader = StatusReader(cfg, p.mongo.DB)
	p.current = CurrentStatusReader(cfg, p.mongo.DB)
	if cfg.Status.OrderStatusEnabled() {
		if err := status.EnsureViewIndexes(ctx, p.mongo.DB); err != nil {
			return nil, err
		}
		p.view = status.NewView(p.mongo.DB, status.ViewConfig{Logger: log, Resolve: p.lookupOrder, DeliveryEnabled: cfg.DeliveryEnabled(),
			// Three write timeouts, and at least 30 s: a write still
			// running after that is not.
			SettleAfter: max(30*time.Second, 3*cfg.Status.WriteTimeout.Duration)})
	}
	p.recorder, err = status.NewRecorder(events, status.RecorderConfig{
		MaxBatch:     cfg.Status.MaxBatch,
		WriteTimeout: cfg.Status.WriteTimeout.Duration,
		Logger:       log,
		Retry:        true,
		View:         p.view,
		OnWrite:      p.metrics.OnStatusWrite,
	})
	if err != nil {
		return nil, err
	}
	if readsSource(cfg) && cfg.Status.LineClaimsEnabled() {
		if p.claims, err = claim.NewStore(p.mongo.DB.Collection(claim.Collection), claim.Config{
			WriteTimeout: cfg.Status.WriteTimeout.Duration, Logger: log,
		}); err != nil {
			return nil, err
		}
	}
	if p.pub, err = p.kafka.NewPublisher(); err != nil {
		return nil, err
	}
	p.router, err = message.NewRouter(message.RouterConfig{CloseTimeout: cfg.Router.CloseTimeout.Duration}, wmlog.New(log))
	if err != nil {
		return nil, fmt.Errorf("create router: %w", err)
	}
	if cfg.Tracing.Enabled {
		p.router.AddMiddleware(tracing.Middleware)
	}
	wmmetrics.NewPrometheusMetricsBuilder(p.metrics.Registry, "orderflow", "router").AddPrometheusRouterMetrics(p.router)
	p.metrics.Registry.MustRegister(lagCollector{p})
	var groups []string
	for _, h := range cfg.Handlers {
		if h.IsEnabled() {
			groups = append(groups, h.Group)
		}
	}
	p.groups = newGroupHealth(kadm.NewClient(p.admin), groups, cfg.Router.GroupStalledAfter.Duration)
	p.metrics.Registry.MustRegister(p.groups)
	deps, err := p.deps()
	if err != nil {
		return nil, err
	}
	for _, h := range cfg.Handlers {
		if !h.IsEnabled() || (len(opts.Only) > 0 && !slices.Contains(opts.Only, h.Name)) {
			continue
		}
		if err := p.addHandler(h, deps); err != nil {
			return nil, fmt.Errorf("handler %s: %w", h.Name, err)
		}
	}
	if len(p.handlers) == 0 {
		return nil, errors.New("no handler to run: every handler is disabled")
	}
	return p, nil
}

func (p *Pipeline) deps() (handlers.Deps, error) {
	d := handlers.Deps{
		Fraud:     p.cache,
		Locations: p.cache,
		Products:  p.cache,
		Status:    p.recorder,
		Stopping:  p.stopping,
		Logger:    p.log,
		Delivery: handlers.DeliveryConfig{
			AssemblyTimeout: p.cfg.Delivery.AssemblyTimeout.Duration,
			DeliverTimeout:  p.cfg.Delivery.DeliverTimeout.Duration,
			MaxLookups:      p.cfg.Delivery.MaxLookups,
			Delivered: func(ctx context.Context, id int64, line int) (bool, error) {
				// A delivered order's lines all were: one find by _id
				// in order_status answers most stragglers, without a
				// read of the order's records (which scans them on
				// FerretDB, two at a time).
				if p.current != nil {
					if done, err := p.current.Reached(ctx, id, status.Delivered); err != nil || done {
						return done, err
					}
				}
				o, err := p.lookupOrder(ctx, id)
				if err != nil || o == nil {
					return false, err
				}
				for _, l := range o.Progress {
					if l.Line == line {
						return l.Status == status.Delivered, nil
					}
				}
				return false, nil
			},
		},
	}
	for _, pc := range p.cfg.Delivery.Partners {
		partner := handlers.Partner{Name: pc.Name, RouteIDs: pc.Match.RouteIDs, Categories: pc.Match.Categories}
		switch pc.Sink.Type {
		case "dir":
			sink := delivery.DirSink{Dir: pc.Sink.Path}
			if n, err := sink.CleanTemp(time.Now()); err != nil {
				p.log.Warn("partner directory: temporary files left by a crash could not be removed", "partner", pc.Name, "error", err)
			} else if n > 0 {
				p.log.Info("partner directory: removed temporary files left by a crash", "partner", pc.Name, "files", n)
			}
			partner.Sink = sink
		case "http":
			partner.Sink = delivery.HTTPSink{
				URL: pc.Sink.URL, Token: pc.Sink.Token, Timeout: pc.Sink.Timeout.Duration,
				MaxRetries: pc.Sink.MaxRetries, InitialInterval: pc.Sink.InitialInterval.Duration,
				MaxInterval: pc.Sink.MaxInterval.Duration,
			}
		}
		d.Delivery.Partners = append(d.Delivery.Partners, partner)
	}
	return d, nil
}

func (p *Pipeline) addHandler(h config.HandlerConfig, deps handlers.Deps) error {
	kind := handlers.Registry[h.Processor]
	if kind.Fields != nil {
		return p.addAggregate(h, deps)
	}
	proc, err := kind.New(deps)
	if err != nil {
		return err
	}
	sub, err := p.kafka.NewSubscriber(h.Group)
	if err != nil {
		return err
	}
	p.subs = append(p.subs, sub)
	st := &stage{
		name: h.Name, subscribe: h.Subscribe, status: status.Status(h.Status), proc: proc,
		publish: h.Publish, routes: h.Routes, writer: p.recorder, log: p.log.With("handler", h.Name),
	}
	if slices.Contains(p.cfg.Topology().Sources, h.Subscribe) && p.claims != nil {
		// Lines enter the pipeline here: a copy of a line with other
		// content than its first is a conflict, not a redelivery.
		st.claims = p.claims
	}
	var handler *message.Handler
	if kind.Publishes || len(kind.Routes) > 0 {
		pub := keepOpen{&topicRouter{log: p.log, next: &status.Publisher{Next: p.pub, Writer: p.recorder, Status: status.Status(h.Status), Context: p.stopCtx}}}
		handler = p.router.AddHandler(h.Name, h.Subscribe, sub, h.Publish, pub, st.handle)
	} else {
		handler = p.router.AddConsumerHandler(h.Name, h.Subscribe, sub, func(msg *message.Message) error {
			_, err := st.handle(msg)
			return err
		})
	}
	if err := p.addMiddleware(handler, h); err != nil {
		return err
	}
	p.handlers = append(p.handlers, h.Name)
	return nil
}

// readsSource reports whether an enabled handler reads a topic fed from
// outside the handlers, whose lines are claimed (see package claim).
func readsSource(cfg *config.Config) bool {
	sources := cfg.Topology().Sources
	for _, h := range cfg.Handlers {
		if h.IsEnabled() && slices.Contains(sources, h.Subscribe) {
			return true
		}
	}
	return false
}

// addMiddleware gives a router handler the configured handler's stack.
func (p *Pipeline) addMiddleware(handler *message.Handler, h config.HandlerConfig) error {
	mws, err := p.stack(h, p.cfg.StackFor(h))
	if err != nil {
		return err
	}
	if h.RedeliverForever {
		// Declared to hold a failing line without end: never silently.
		watch := middleware.Held(middleware.HeldConfig{Lines: p.held, ReportAfter: p.cfg.Router.HeldReportAfter, Logger: p.log, OnHeld: p.metrics.OnHeld,
			OrderID: func(msg *message.Message) string {
				if ref, ok := status.LineFrom(msg.Context()); ok {
					return strconv.FormatInt(ref.OrderID, 10)
				}
				pos, _ := kafkaclient.Position(msg)
				return string(pos.Key)
			}})
		mws = append([]message.HandlerMiddleware{watch}, mws...)
	}
	handler.AddMiddleware(mws...)
	return nil
}

// stack builds a handler's middleware, outermost first.
func (p *Pipeline) stack(h config.HandlerConfig, stack []config.Middleware) ([]message.HandlerMiddleware, error) {
	classifier := middleware.AllPermanent
	for _, m := range stack {
		if m.Poison != nil {
			classifier = middleware.Classifier{}
			for _, k := range m.Poison.Permanent {
				classifier.Permanent = append(classifier.Permanent, failure.Kind(k))
			}
		}
	}
	var out []message.HandlerMiddleware
	for _, m := range stack {
		switch m.Kind {
		case config.MWCorrelationID:
			out = append(out, middleware.CorrelationID)
		case config.MWPoisonQueue:
			mw, err := middleware.PoisonQueue(middleware.PoisonQueueConfig{
				Publisher:    keepOpen{&status.Publisher{Next: p.pub, Writer: p.recorder, Status: status.Failed, ReasonKey: middleware.ReasonKey, Context: p.stopCtx}},
				Topic:        m.Poison.Topic,
				Classifier:   classifier,
				AfterRetries: *m.Poison.AfterRetries,
				Group:        h.Group,
				Origin: func(msg *message.Message) (middleware.Origin, bool) {
					pos, ok := kafkaclient.Position(msg)
					return middleware.Origin{Partition: pos.Partition, Offset: pos.Offset, Key: pos.Key}, ok
				},
				ShuttingDown: p.closing.Load,
				Logger:       p.log,
				Describe:     describe,
				OnPoison:     p.metrics.OnPoison,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, mw)
		case config.MWRetry:
			out = append(out, middleware.Retry(middleware.RetryConfig{
				MaxRetries: m.Retry.MaxRetries, InitialInterval: m.Retry.InitialInterval.Duration,
				MaxInterval: m.Retry.MaxInterval.Duration, Multiplier: m.Retry.Multiplier, Jitter: m.Retry.Jitter,
				Classifier: classifier, ShuttingDown: p.closing.Load, Logger: p.log, Describe: describe,
			}))
		case config.MWRecoverer:
			out = append(out, wmmiddleware.Recoverer)
		case config.MWTimeout:
			out = append(out, wmmiddleware.Timeout(m.Timeout.Duration.Duration))
		case config.MWThrottle:
			out = append(out, middleware.Throttle(m.Throttle.PerSecond))
		default:
			return nil, fmt.Errorf("unknown middleware %q", m.Kind)
		}
	}
	return out, nil
}

// describe gives the log attributes of a message: its order and line, and
// its correlation id, so that every log line about a message can be found
// by either.
func describe(msg *message.Message) []any {
	attrs := []any{"correlation_id", wmmiddleware.MessageCorrelationID(msg)}
	if ref, ok := status.LineFrom(msg.Context()); ok {
		attrs = append(attrs, "order_id", ref.OrderID, "line", ref.Line)
	} else if pos, ok := kafkaclient.Position(msg); ok {
		attrs = append(attrs, "key", string(pos.Key))
	}
	return attrs
}

// maxOrderLookups is how many reads of one order's records may run at once.
const maxOrderLookups = 2

// lookupOrder reads one order's status from its records, waiting for a
// lookup slot; see Pipeline.lookups.
func (p *Pipeline) lookupOrder(ctx context.Context, id int64) (*status.Order, error) {
	select {
	case p.lookups <- struct{}{}:
		defer func() { <-p.lookups }()
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to read order %d: %w", id, ctx.Err())
	}
	return p.reader.Order(ctx, id)
}

// Handlers names the handlers this process runs.
func (p *Pipeline) Handlers() []string { return p.handlers }

// Status returns the reader of order statuses.
func (p *Pipeline) Status() *status.Reader { return p.reader }

var lagDesc = prometheus.NewDesc("orderflow_consumer_lag", "Messages between the committed offset and the end of each partition.",
	[]string{"group", "topic", "partition"}, nil)

// keepOpen shields a shared publisher from the router, which closes each
// handler's publisher when the handler stops, while other handlers (and
// messages still in flight) may still use it. The pipeline closes the real
// one once the router has stopped.
type keepOpen struct{ message.Publisher }

func (keepOpen) Close() error { return nil }
