package app

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/status"
)

// Config is the whole configuration of orderflow: the servers, the topics,
// the handlers and their middleware. It is read from a YAML file (see
// orderflow.yaml) with environment variables on top; see Load.
type Config struct {
	Kafka      KafkaConfig            `yaml:"kafka"`
	MongoDB    MongoConfig            `yaml:"mongodb"`
	Metadata   MetadataConfig         `yaml:"metadata"`
	Status     StatusConfig           `yaml:"status"`
	Router     RouterConfig           `yaml:"router"`
	HTTP       HTTPConfig             `yaml:"http"`
	Log        LogConfig              `yaml:"log"`
	Tracing    TracingConfig          `yaml:"tracing"`
	Generator  GeneratorConfig        `yaml:"generator"`
	Topics     map[string]TopicConfig `yaml:"topics"`
	Middleware []Middleware           `yaml:"middleware"`
	Handlers   []HandlerConfig        `yaml:"handlers"`
	Delivery   DeliveryConfig         `yaml:"delivery"`

	// envNames are the variables that override a setting (see EnvNames).
	envNames []string
}

// KafkaConfig says how to reach the brokers and how to consume.
type KafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	// Client is the Watermill Publisher/Subscriber implementation: "franz"
	// (batched, the default) or "watermill-kafka" (the stock one).
	Client string `yaml:"client"`
	// InitialOffset is where a group without committed offsets starts:
	// "oldest" (the default, nothing produced before the first start is
	// skipped) or "latest".
	InitialOffset  string   `yaml:"initial_offset"`
	MaxInFlight    int      `yaml:"max_in_flight"`
	CommitInterval Duration `yaml:"commit_interval"`
	SessionTimeout Duration `yaml:"session_timeout"`
	DrainTimeout   Duration `yaml:"drain_timeout"`
	// RebalanceTimeout bounds a rebalance; a member that died holds its
	// group that long (default: drain_timeout + 10s).
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// InstanceID makes the process a static member of its consumer groups:
	// restarted with the same id, it gets its partitions back at once
	// instead of after a rebalance. Unique per process (a pod name).
	InstanceID string   `yaml:"instance_id"`
	Linger     Duration `yaml:"linger"`
	// Compression of produced batches: none (the default; on a local
	// network it only costs CPU), gzip, snappy, lz4 or zstd.
	Compression     string   `yaml:"compression"`
	DeliveryTimeout Duration `yaml:"delivery_timeout"`
	Replication     int      `yaml:"replication"`
	// MinInsyncReplicas is min.insync.replicas of the topics created: with
	// acks=all, a write counts once this many replicas have it.
	MinInsyncReplicas int        `yaml:"min_insync_replicas"`
	TLS               TLSConfig  `yaml:"tls"`
	SASL              SASLConfig `yaml:"sasl"`
}

// TLSConfig enables TLS towards a server.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates to Kafka. The password comes from the
// environment only (ORDERFLOW_KAFKA_SASL_PASSWORD).
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" secret:"true"`
}

// MongoConfig says how to reach MongoDB.
type MongoConfig struct {
	// URI is the connection string; credentials belong in Username and the
	// ORDERFLOW_MONGODB_PASSWORD variable, not in the URI of a file.
	URI           string    `yaml:"uri"`
	Database      string    `yaml:"database"`
	Username      string    `yaml:"username"`
	Password      string    `yaml:"password" secret:"true"`
	AuthSource    string    `yaml:"auth_source"`
	AuthMechanism string    `yaml:"auth_mechanism"`
	Timeout       Duration  `yaml:"timeout"`
	TLS           TLSConfig `yaml:"tls"`
	// MaxPoolSize bounds the client's connections; 0 is the driver's
	// default (100). Not a setting of the file: the API's client is made
	// with http.mongodb_pool.
	MaxPoolSize int `yaml:"-"`
	// WriteConcern is "majority" (the default: a status write is
	// acknowledged once a majority of the replica set has it in its
	// journal, so a mongod crash cannot lose records whose offsets were
	// committed) or "1" (the primary alone, faster, less safe).
	WriteConcern string `yaml:"write_concern"`
}

// MetadataConfig configures the in-memory metadata cache.
type MetadataConfig struct {
	// RefreshInterval re-reads the metadata in the background, for edits
	// made by hand.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// MissRefreshInterval: a lookup miss waits for a read begun after it,
	// at most one such read per interval.
	MissRefreshInterval Duration `yaml:"miss_refresh_interval"`
	// VersionPollInterval: how often routers check whether `metadata load`
	// ran; a load reaches them within it.
	VersionPollInterval Duration `yaml:"version_poll_interval"`
	// UnknownReferenceGrace: how long a line whose location or product is
	// missing waits for it before it is poisoned as unknown_reference.
	UnknownReferenceGrace Duration `yaml:"unknown_reference_grace"`
}

// StatusConfig configures the status recorder.
type StatusConfig struct {
	MaxBatch     int      `yaml:"max_batch"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// OpenOrderQuiet: an order whose lines come in the original system's
	// format (no line count) is final once its lines seen are and none came
	// for this long.
	OpenOrderQuiet Duration `yaml:"open_order_quiet"`
	// OrderStatus keeps the order_status collection for any MongoDB client
	// (default true); false leaves only the records.
	OrderStatus *bool `yaml:"order_status"`
}

// OrderStatusEnabled says whether the order_status collection is kept.
func (c StatusConfig) OrderStatusEnabled() bool { return c.OrderStatus == nil || *c.OrderStatus }

// RouterConfig configures the Watermill router.
type RouterConfig struct {
	// CloseTimeout bounds a graceful shutdown.
	CloseTimeout Duration `yaml:"close_timeout"`
	// HeldDegradedAfter: /readyz reports degraded once a line of a
	// redeliver_forever handler has kept failing this long.
	HeldDegradedAfter Duration `yaml:"held_degraded_after"`
	// HeldReportAfter is the failures of one line, in such a handler,
	// after which it is logged at ERROR level, counted and listed by /stuck.
	HeldReportAfter int `yaml:"held_report_after"`
	// GroupStalledAfter: /readyz reports degraded once a consumer group of
	// the configuration has lag and its commits have not moved this long,
	// which is what a group looks like whose partitions sit with a dead
	// member. GroupHealthInterval is how often the broker is asked.
	GroupStalledAfter   Duration `yaml:"group_stalled_after"`
	GroupHealthInterval Duration `yaml:"group_health_interval"`
}

// HTTPConfig configures the metrics, health, API and dashboard listener.
type HTTPConfig struct {
	// Listen is the address; empty disables the listener. The default is
	// loopback only.
	Listen string `yaml:"listen"`
	// StuckAfter is the default age after which /stuck lists an order
	// that is not final.
	StuckAfter Duration `yaml:"stuck_after"`
	// MaxConcurrent bounds the API requests served at once; the rest get
	// 503 with Retry-After. RequestTimeout bounds each one.
	MaxConcurrent  int      `yaml:"max_concurrent"`
	RequestTimeout Duration `yaml:"request_timeout"`
	// MongoPool is the size of the API's own MongoDB connection pool,
	// apart from the pipeline's, so that reads never take the connections
	// status writes need.
	MongoPool int `yaml:"mongodb_pool"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (text on a terminal, JSON otherwise), text, json
}

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
	// Exporter is "stdout" or "otlp" (OTLP over HTTP to Endpoint).
	Exporter    string `yaml:"exporter"`
	Endpoint    string `yaml:"endpoint"`
	ServiceName string `yaml:"service_name"`
}

// GeneratorConfig configures `orderflow generate`.
type GeneratorConfig struct {
	Topic string `yaml:"topic"`
	// FraudShare is the share of orders given an IP from the fraud list.
	FraudShare float64 `yaml:"fraud_share"`
	// Workers is how many orders are published concurrently.
	Workers int `yaml:"workers"`
}

// TopicConfig configures a topic.
type TopicConfig struct {
	Partitions int `yaml:"partitions"`
	// External declares that something outside orderflow publishes to the
	// topic, so a handler may consume it though no handler feeds it.
	External bool `yaml:"external"`
}

// HandlerConfig is one handler of the router.
type HandlerConfig struct {
	Name string `yaml:"name"`
	// Processor names the processor in the registry.
	Processor string `yaml:"processor"`
	// Enabled defaults to true.
	Enabled   *bool  `yaml:"enabled"`
	Subscribe string `yaml:"subscribe"`
	Group     string `yaml:"group"`
	// Publish is the output topic of a processor with one output.
	Publish string `yaml:"publish"`
	// Routes maps the named outputs of a processor with several (route:
	// internal, external) to topics.
	Routes map[string]string `yaml:"routes"`
	// Status is recorded for each line the handler passes on.
	Status status.Status `yaml:"status"`
	// Middleware replaces the default stack for this handler. Left out
	// when empty, so that a configuration printed and read back (config
	// print, the bench) keeps the default stack.
	Middleware []Middleware `yaml:"middleware,omitempty"`
	// AllowCycle declares that a cycle of handlers through this one is
	// meant; without it on every member, config check refuses the cycle.
	AllowCycle bool `yaml:"allow_cycle"`
	// RedeliverForever declares that this handler's stack may redeliver a
	// failing line without end (no poison queue, or after_retries: false);
	// without it, config check refuses such a stack.
	RedeliverForever bool `yaml:"redeliver_forever"`
}

// IsEnabled reports whether the handler runs.
func (h HandlerConfig) IsEnabled() bool { return h.Enabled == nil || *h.Enabled }

// DeliveryConfig configures the partner delivery stage.
type DeliveryConfig struct {
	// AssemblyTimeout is how long a line waits for the other external lines
	// of its order.
	AssemblyTimeout Duration        `yaml:"assembly_timeout"`
	Partners        []PartnerConfig `yaml:"partners"`
}

// PartnerConfig is one external partner: which lines it gets and where they go.
type PartnerConfig struct {
	Name  string      `yaml:"name"`
	Match MatchConfig `yaml:"match"`
	Sink  SinkConfig  `yaml:"sink"`
}

// MatchConfig selects lines by product metadata.
type MatchConfig struct {
	RouteIDs   []int    `yaml:"route_ids"`
	Categories []string `yaml:"categories"`
}

// SinkConfig is where a partner's orders go.
type SinkConfig struct {
	// Type is "dir" or "http".
	Type string `yaml:"type"`
	// Path is the directory of a dir sink.
	Path string `yaml:"path"`
	// URL is the endpoint of an http sink.
	URL             string   `yaml:"url"`
	Timeout         Duration `yaml:"timeout"`
	MaxRetries      int      `yaml:"max_retries"`
	InitialInterval Duration `yaml:"initial_interval"`
	MaxInterval     Duration `yaml:"max_interval"`
	// Token, when set, is sent as a bearer token; from the environment only.
	Token string `yaml:"token" secret:"true"`
}

// Duration is a time.Duration written as "1.5s" or "200ms". A value that does
// not parse is kept with its error, so that Validate can report it with its
// key and line.
type Duration struct {
	time.Duration
	raw string
	err error
}

// D returns a Duration.
func D(d time.Duration) Duration { return Duration{Duration: d} }

// UnmarshalYAML parses the duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.raw = n.Value
	d.Duration, d.err = time.ParseDuration(n.Value)
	return nil
}

// MarshalYAML writes the duration back as text.
func (d Duration) MarshalYAML() (any, error) {
	if d.err != nil {
		return d.raw, nil
	}
	return d.String(), nil
}

func (d *Duration) set(s string) {
	d.raw = s
	d.Duration, d.err = time.ParseDuration(s)
}

// Middleware is one entry of a middleware stack: its kind and its
// parameters. In YAML it is either a name ("recoverer") or a one-key map
// ("retry: {max_retries: 3}").
type Middleware struct {
	Kind     string
	Retry    *RetryParams
	Poison   *PoisonParams
	Timeout  *TimeoutParams
	Throttle *ThrottleParams
}

// Middleware kinds.
const (
	MWCorrelationID = "correlation_id"
	MWPoisonQueue   = "poison_queue"
	MWRetry         = "retry"
	MWRecoverer     = "recoverer"
	MWTimeout       = "timeout"
	MWThrottle      = "throttle"
)

// middlewareParams gives, for each kind, a new value of its parameters type
// (nil for kinds without parameters).
var middlewareParams = map[string]func() any{
	MWCorrelationID: nil,
	MWRecoverer:     nil,
	MWPoisonQueue:   func() any { return &PoisonParams{} },
	MWRetry:         func() any { return &RetryParams{} },
	MWTimeout:       func() any { return &TimeoutParams{} },
	MWThrottle:      func() any { return &ThrottleParams{} },
}

// RetryParams configures the retry middleware: exponential backoff with
// jitter. Permanent errors are never retried.
type RetryParams struct {
	MaxRetries      int      `yaml:"max_retries"`
	InitialInterval Duration `yaml:"initial_interval"`
	MaxInterval     Duration `yaml:"max_interval"`
	Multiplier      float64  `yaml:"multiplier"`
	// Jitter spreads each interval by up to this share either way.
	Jitter float64 `yaml:"jitter"`
}

// PoisonParams configures the poison queue middleware.
type PoisonParams struct {
	Topic string `yaml:"topic"`
	// Permanent lists the error kinds that go straight to the poison queue.
	Permanent []string `yaml:"permanent"`
	// AfterRetries poisons transient errors too once the retries are
	// exhausted (default true). Unavailability of MongoDB or the broker, and
	// anything during shutdown, is never poisoned.
	AfterRetries *bool `yaml:"after_retries"`
}

// TimeoutParams configures the timeout middleware.
type TimeoutParams struct {
	Duration Duration `yaml:"duration"`
}

// ThrottleParams configures the throttle middleware.
type ThrottleParams struct {
	PerSecond int `yaml:"per_second"`
}

func (m *Middleware) params() any {
	switch m.Kind {
	case MWRetry:
		return m.Retry
	case MWPoisonQueue:
		return m.Poison
	case MWTimeout:
		return m.Timeout
	case MWThrottle:
		return m.Throttle
	}
	return nil
}

// UnmarshalYAML reads a name or a one-key map.
func (m *Middleware) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		m.Kind = n.Value
		if f, ok := middlewareParams[m.Kind]; ok && f != nil {
			m.setParams(f())
		}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: a middleware entry is a name or a map with one key", n.Line)
		}
		m.Kind = n.Content[0].Value
		f, ok := middlewareParams[m.Kind]
		if !ok || f == nil {
			return nil // reported by Validate with the line
		}
		p := f()
		if err := n.Content[1].Decode(p); err != nil {
			return err
		}
		m.setParams(p)
		return nil
	}
	return fmt.Errorf("line %d: a middleware entry is a name or a map with one key", n.Line)
}

func (m *Middleware) setParams(p any) {
	switch p := p.(type) {
	case *RetryParams:
		m.Retry = p
	case *PoisonParams:
		m.Poison = p
	case *TimeoutParams:
		m.Timeout = p
	case *ThrottleParams:
		m.Throttle = p
	}
}

// MarshalYAML writes the entry back in its short form.
func (m Middleware) MarshalYAML() (any, error) {
	if p := m.params(); p != nil && !isNilPointer(p) {
		return map[string]any{m.Kind: p}, nil
	}
	return m.Kind, nil
}

// setDefaults fills in what the file left out. Defaults reproduce the
// pipeline of the original design.
func (c *Config) setDefaults() {
	k := &c.Kafka
	defStr(&k.Client, "franz")
	defStr(&k.InitialOffset, "oldest")
	defStr(&k.Compression, "none")
	defInt(&k.MaxInFlight, 1024)
	defDur(&k.CommitInterval, 250*time.Millisecond)
	defDur(&k.SessionTimeout, 10*time.Second)
	defDur(&k.DrainTimeout, 20*time.Second)
	defDur(&k.RebalanceTimeout, k.DrainTimeout.Duration+10*time.Second)
	defDur(&k.DeliveryTimeout, 30*time.Second)
	defInt(&k.Replication, 1)
	defInt(&k.MinInsyncReplicas, max(1, k.Replication-1))
	defStr(&c.MongoDB.Database, "orderflow")
	defDur(&c.MongoDB.Timeout, 10*time.Second)
	defStr(&c.MongoDB.WriteConcern, "majority")
	defDur(&c.Metadata.RefreshInterval, 30*time.Second)
	defDur(&c.Metadata.MissRefreshInterval, time.Second)
	defDur(&c.Metadata.VersionPollInterval, 250*time.Millisecond)
	defDur(&c.Metadata.UnknownReferenceGrace, 10*time.Second)
	defInt(&c.Status.MaxBatch, 4000)
	defDur(&c.Status.WriteTimeout, 10*time.Second)
	defDur(&c.Status.OpenOrderQuiet, 10*time.Second)
	defDur(&c.Router.CloseTimeout, 30*time.Second)
	defDur(&c.Router.HeldDegradedAfter, 5*time.Minute)
	defInt(&c.Router.HeldReportAfter, 10)
	defDur(&c.Router.GroupStalledAfter, 2*time.Minute)
	defDur(&c.Router.GroupHealthInterval, 5*time.Second)
	defDur(&c.HTTP.StuckAfter, 5*time.Minute)
	defInt(&c.HTTP.MaxConcurrent, 32)
	defDur(&c.HTTP.RequestTimeout, 5*time.Second)
	defInt(&c.HTTP.MongoPool, 4)
	defStr(&c.Log.Level, "info")
	defStr(&c.Log.Format, "auto")
	defStr(&c.Tracing.Exporter, "stdout")
	defStr(&c.Tracing.ServiceName, "orderflow")
	defStr(&c.Generator.Topic, "raw_order")
	defInt(&c.Generator.Workers, 16)
	defDur(&c.Delivery.AssemblyTimeout, time.Minute)
	for i := range c.Topics {
		t := c.Topics[i]
		defInt(&t.Partitions, 8)
		c.Topics[i] = t
	}
	for _, stack := range c.stacks() {
		for i := range *stack {
			(*stack)[i].setDefaults()
		}
	}
	for i := range c.Delivery.Partners {
		s := &c.Delivery.Partners[i].Sink
		defDur(&s.Timeout, 5*time.Second)
		defDur(&s.InitialInterval, 200*time.Millisecond)
		defDur(&s.MaxInterval, 5*time.Second)
	}
}

func (m *Middleware) setDefaults() {
	switch {
	case m.Retry != nil:
		defDur(&m.Retry.InitialInterval, 100*time.Millisecond)
		defDur(&m.Retry.MaxInterval, 5*time.Second)
		if m.Retry.Multiplier == 0 {
			m.Retry.Multiplier = 2
		}
	case m.Poison != nil:
		defStr(&m.Poison.Topic, "poison_queue")
		if m.Poison.Permanent == nil {
			for _, k := range failure.Kinds {
				m.Poison.Permanent = append(m.Poison.Permanent, string(k))
			}
		}
		if m.Poison.AfterRetries == nil {
			t := true
			m.Poison.AfterRetries = &t
		}
	case m.Timeout != nil:
		defDur(&m.Timeout.Duration, 30*time.Second)
	}
}

// stacks returns the default middleware stack and every handler's own.
func (c *Config) stacks() []*[]Middleware {
	out := []*[]Middleware{&c.Middleware}
	for i := range c.Handlers {
		if c.Handlers[i].Middleware != nil {
			out = append(out, &c.Handlers[i].Middleware)
		}
	}
	return out
}

// PoisonTopic is the topic of the default stack's poison queue, or of the
// first handler stack that has one.
func (c *Config) PoisonTopic() string {
	for _, stack := range c.stacks() {
		for _, m := range *stack {
			if m.Poison != nil {
				return m.Poison.Topic
			}
		}
	}
	return "poison_queue"
}

// StackFor returns the middleware stack of a handler.
func (c *Config) StackFor(h HandlerConfig) []Middleware {
	if h.Middleware != nil {
		return h.Middleware
	}
	return c.Middleware
}

// problems collects validation errors, each with its key.
type problems struct {
	list []problem
}

type problem struct {
	path string
	msg  string
}

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, problem{path: path, msg: fmt.Sprintf(format, args...)})
}

// Validate checks the configuration. It reports every problem, not just the
// first, each naming its key; Load adds the file and line.
func (c *Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err(nil, "")
}

func (c *Config) validate(p *problems) {
	walkDurations(c, func(path string, d Duration) {
		if d.err != nil {
			p.add(path, "%q is not a duration (write it like 500ms, 10s or 1m30s)", d.raw)
		} else if d.Duration < 0 {
			p.add(path, "must not be negative")
		}
	})
	k := c.Kafka
	if !slices.Contains([]string{"franz", "watermill-kafka"}, k.Client) {
		p.add("kafka.client", "%q is not franz or watermill-kafka", k.Client)
	}
	if k.InitialOffset != "oldest" && k.InitialOffset != "latest" {
		p.add("kafka.initial_offset", "%q is not oldest or latest", k.InitialOffset)
	}
	if !slices.Contains([]string{"none", "gzip", "snappy", "lz4", "zstd"}, k.Compression) {
		p.add("kafka.compression", "%q is not none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	if k.MaxInFlight < 1 {
		p.add("kafka.max_in_flight", "must be at least 1")
	}
	if k.RebalanceTimeout.Duration < k.DrainTimeout.Duration {
		p.add("kafka.rebalance_timeout", "must be at least drain_timeout (%v)", k.DrainTimeout.Duration)
	}
	if k.InstanceID != "" && k.Client != "franz" {
		p.add("kafka.instance_id", "static membership needs the franz client")
	}
	if k.Replication < 1 {
		p.add("kafka.replication", "must be at least 1")
	}
	if k.MinInsyncReplicas < 1 || k.MinInsyncReplicas > k.Replication {
		p.add("kafka.min_insync_replicas", "must be between 1 and kafka.replication (%d)", k.Replication)
	}
	switch k.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.add("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if k.SASL.Mechanism != "" && k.SASL.Username == "" {
		p.add("kafka.sasl.username", "is required with a SASL mechanism")
	}
	if c.MongoDB.URI != "" {
		if u, err := url.Parse(c.MongoDB.URI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			p.add("mongodb.uri", "is not a mongodb:// or mongodb+srv:// URI")
		}
	}
	if c.MongoDB.WriteConcern != "majority" && c.MongoDB.WriteConcern != "1" {
		p.add("mongodb.write_concern", "%q is not majority or 1", c.MongoDB.WriteConcern)
	}
	if c.MongoDB.Database == "" {
		p.add("mongodb.database", "is empty")
	}
	if c.Metadata.VersionPollInterval.Duration == 0 && c.Metadata.VersionPollInterval.raw != "" {
		p.add("metadata.version_poll_interval", "must be positive")
	}
	if c.HTTP.MaxConcurrent < 1 || c.HTTP.MongoPool < 1 {
		p.add("http", "max_concurrent and mongodb_pool must be at least 1")
	}
	if c.Router.HeldReportAfter < 1 {
		p.add("router.held_report_after", "must be at least 1")
	}
	if c.Status.MaxBatch < 1 {
		p.add("status.max_batch", "must be at least 1")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, c.Log.Format) {
		p.add("log.format", "%q is not auto, text or json", c.Log.Format)
	}
	if c.Tracing.Exporter != "stdout" && c.Tracing.Exporter != "otlp" {
		p.add("tracing.exporter", "%q is not stdout or otlp", c.Tracing.Exporter)
	}
	if c.Generator.FraudShare < 0 || c.Generator.FraudShare > 1 {
		p.add("generator.fraud_share", "%v is outside 0..1", c.Generator.FraudShare)
	}
	if c.Generator.Workers < 1 {
		p.add("generator.workers", "must be at least 1")
	}
	c.checkTopic(p, "generator.topic", c.Generator.Topic)
	for name, t := range c.Topics {
		if t.Partitions < 1 {
			p.add("topics."+name+".partitions", "must be at least 1")
		}
	}
	c.validateStack(p, "middleware", c.Middleware)
	c.validateHandlers(p)
	c.Topology().check(p)
	c.validateDelivery(p)
}

func (c *Config) checkTopic(p *problems, path, topic string) {
	if topic == "" {
		p.add(path, "no topic given")
		return
	}
	if _, ok := c.Topics[topic]; !ok {
		p.add(path, "topic %q is not declared under topics", topic)
	}
}

func (c *Config) validateStack(p *problems, path string, stack []Middleware) {
	seen := map[string]int{}
	for i, m := range stack {
		at := fmt.Sprintf("%s[%d]", path, i)
		if _, ok := middlewareParams[m.Kind]; !ok {
			p.add(at, "unknown middleware %q (known: %s)", m.Kind, strings.Join(sortedKeys(middlewareParams), ", "))
			continue
		}
		if _, dup := seen[m.Kind]; dup {
			p.add(at, "%s appears twice in the stack", m.Kind)
		}
		seen[m.Kind] = i
		switch {
		case m.Retry != nil:
			r := m.Retry
			if r.MaxRetries < 0 {
				p.add(at+".retry.max_retries", "must not be negative")
			}
			if r.Multiplier < 1 {
				p.add(at+".retry.multiplier", "must be at least 1")
			}
			if r.Jitter < 0 || r.Jitter >= 1 {
				p.add(at+".retry.jitter", "must be in 0..1")
			}
			if r.MaxInterval.Duration < r.InitialInterval.Duration {
				p.add(at+".retry.max_interval", "is below initial_interval")
			}
		case m.Poison != nil:
			c.checkTopic(p, at+".poison_queue.topic", m.Poison.Topic)
			for j, kind := range m.Poison.Permanent {
				if !slices.Contains(failure.Kinds, failure.Kind(kind)) {
					p.add(fmt.Sprintf("%s.poison_queue.permanent[%d]", at, j), "unknown error kind %q (known: %s)", kind, kindList())
				}
			}
		case m.Throttle != nil:
			if m.Throttle.PerSecond < 1 {
				p.add(at+".throttle.per_second", "must be at least 1")
			}
		case m.Timeout != nil:
			if m.Timeout.Duration.Duration <= 0 {
				p.add(at+".timeout.duration", "must be positive")
			}
		}
	}
	// The order that works: the poison queue outside the retries, so that it
	// sees an error only once the retries are spent, and the recoverer inside
	// both, so that a panic becomes an error they handle.
	if pq, ok := seen[MWPoisonQueue]; ok {
		if r, ok := seen[MWRetry]; ok && r < pq {
			p.add(fmt.Sprintf("%s[%d]", path, pq), "poison_queue must come before retry: after it, it would poison messages before they are retried")
		}
	}
	if rec, ok := seen[MWRecoverer]; ok {
		for _, outer := range []string{MWPoisonQueue, MWRetry} {
			if o, ok := seen[outer]; ok && o > rec {
				p.add(fmt.Sprintf("%s[%d]", path, rec), "recoverer must come after %s, so that a panic reaches it as an error", outer)
			}
		}
	}
}

func (c *Config) validateHandlers(p *problems) {
	names := map[string]bool{}
	subscriptions := map[[2]string]string{}
	for i, h := range c.Handlers {
		at := fmt.Sprintf("handlers[%d]", i)
		if h.Name == "" {
			p.add(at+".name", "is empty")
		} else if names[h.Name] {
			p.add(at+".name", "handler %q is defined twice", h.Name)
		}
		names[h.Name] = true
		kind, ok := handlers.Registry[h.Processor]
		if !ok {
			p.add(at+".processor", "unknown processor %q (known: %s)", h.Processor, strings.Join(sortedKeys(handlers.Registry), ", "))
		}
		c.checkTopic(p, at+".subscribe", h.Subscribe)
		if h.Group == "" {
			p.add(at+".group", "is empty")
		}
		key := [2]string{h.Group, h.Subscribe}
		if other, dup := subscriptions[key]; dup && h.IsEnabled() {
			p.add(at+".group", "handler %q already consumes %s in group %s: two handlers in one group would split the topic's partitions between them", other, h.Subscribe, h.Group)
		}
		if h.IsEnabled() {
			subscriptions[key] = h.Name
		}
		if !h.Status.IsStage() {
			p.add(at+".status", "%q is not one of %v", h.Status, status.Stages)
		}
		// A line waiting out the grace must not be cut by the timeout: it
		// would be redelivered, never poisoned. A handler may look up two
		// ids, each with its grace.
		grace := c.Metadata.UnknownReferenceGrace.Duration
		for _, m := range c.StackFor(h) {
			if m.Timeout != nil && m.Timeout.Duration.Duration > 0 && m.Timeout.Duration.Duration <= 2*grace {
				p.add(at+".middleware", "handler %q: its timeout (%v) must be over twice metadata.unknown_reference_grace (%v); raise the timeout or lower the grace",
					h.Name, m.Timeout.Duration.Duration, grace)
			}
		}
		if ok {
			switch {
			case len(kind.Routes) > 0:
				if h.Publish != "" {
					p.add(at+".publish", "processor %s publishes by route: use routes", h.Processor)
				}
				for _, r := range kind.Routes {
					if h.Routes[r] == "" {
						p.add(at+".routes", "route %q needs a topic", r)
					} else {
						c.checkTopic(p, at+".routes."+r, h.Routes[r])
					}
				}
				for r := range h.Routes {
					if !slices.Contains(kind.Routes, r) {
						p.add(at+".routes."+r, "processor %s has no route %q", h.Processor, r)
					}
				}
			case kind.Publishes:
				c.checkTopic(p, at+".publish", h.Publish)
				if len(h.Routes) > 0 {
					p.add(at+".routes", "processor %s has one output: give it publish, not routes", h.Processor)
				}
			default:
				if h.Publish != "" || len(h.Routes) > 0 {
					p.add(at+".publish", "processor %s does not publish", h.Processor)
				}
			}
		}
		if h.Middleware != nil {
			c.validateStack(p, at+".middleware", h.Middleware)
		}
		if why := holdsForever(c.StackFor(h)); why != "" && !h.RedeliverForever {
			key := at + ".middleware"
			if h.Middleware == nil {
				key = "middleware"
			}
			p.add(key, "handler %q: %s, so a line that keeps failing is redelivered without end and its order never moves; add poison_queue with after_retries: true, or set redeliver_forever: true on the handler to mean it", h.Name, why)
		}
		if h.Processor == "deliver" && h.IsEnabled() && c.Kafka.Client == "watermill-kafka" {
			p.add(at+".processor", "the deliver processor holds an order's lines until all have arrived, which needs several messages of a partition in flight: use kafka.client franz, or disable this handler")
		}
	}
}

func (c *Config) validateDelivery(p *problems) {
	names := map[string]bool{}
	for i, pc := range c.Delivery.Partners {
		at := fmt.Sprintf("delivery.partners[%d]", i)
		if pc.Name == "" {
			p.add(at+".name", "is empty")
		} else if names[pc.Name] {
			p.add(at+".name", "partner %q is defined twice", pc.Name)
		}
		names[pc.Name] = true
		if len(pc.Match.RouteIDs) == 0 && len(pc.Match.Categories) == 0 {
			p.add(at+".match", "needs route_ids or categories")
		}
		s := pc.Sink
		switch s.Type {
		case "dir":
			if s.Path == "" {
				p.add(at+".sink.path", "a dir sink needs a path")
			}
		case "http":
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(at+".sink.url", "%q is not an http(s) URL", s.URL)
			}
			if s.MaxRetries < 0 {
				p.add(at+".sink.max_retries", "must not be negative")
			}
		default:
			p.add(at+".sink.type", "%q is not dir or http", s.Type)
		}
	}
}

// holdsForever says why a stack can redeliver a failing line without end,
// or "" when it cannot.
func holdsForever(stack []Middleware) string {
	for _, m := range stack {
		if m.Poison != nil {
			if m.Poison.AfterRetries != nil && !*m.Poison.AfterRetries {
				return "its poison_queue has after_retries: false (errors other than its permanent kinds are never poisoned)"
			}
			return ""
		}
	}
	return "its middleware has no poison_queue"
}

func kindList() string {
	var s []string
	for _, k := range failure.Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func defStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defInt(i *int, v int) {
	if *i == 0 {
		*i = v
	}
}

func defDur(d *Duration, v time.Duration) {
	if d.Duration == 0 && d.err == nil && d.raw == "" {
		d.Duration = v
	}
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

func (p *problems) err(lines map[string]int, file string) error {
	if len(p.list) == 0 {
		return nil
	}
	var out []string
	for _, pr := range p.list {
		prefix := pr.path + ": "
		if line := lineOf(lines, pr.path); line > 0 {
			prefix = fmt.Sprintf("%s:%d: %s: ", file, line, pr.path)
		}
		out = append(out, prefix+pr.msg)
	}
	return &ConfigError{Problems: out}
}

// lineOf finds the line of path or of its nearest parent that is in the file.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

var errNoBrokers = errors.New("no Kafka brokers configured: set kafka.brokers, ORDERFLOW_KAFKA_BROKERS or --brokers (or run `orderflow demo` for an embedded stack)")

var errNoMongo = errors.New("no MongoDB configured: set mongodb.uri, ORDERFLOW_MONGODB_URI or --mongodb-uri (or run `orderflow demo` for an embedded stack)")
