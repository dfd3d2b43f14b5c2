// Package bench measures the pipeline against two references on the same
// broker and MongoDB: the ceiling (the same lines through three hops of raw
// Kafka) and a plain Watermill baseline (a lookup and a status update per
// message). Every figure is a ratio or a count from one run, because these
// machines are shared and noisy.
//
// The router runs as a child process (the real orderflow binary), so its CPU
// time and peak memory are its own; the embedded servers and the generator
// run in the benchmark's process. The ceiling's relay runs as a child too.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/embedded"
	_ "github.com/orderflow/orderflow/handlers" // registers the processors the configuration names
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
)

// Options configure a benchmark.
type Options struct {
	// Lines is the size of the main run.
	Lines int
	// SmallLines is the size of the run the main one's throughput is
	// compared with (cost stays flat as work grows); 0 skips it.
	SmallLines int
	// HalfRateLines is the size of the run at half the pipeline's maximum
	// rate, for latency.
	HalfRateLines int
	// BaselineLines and BaselineTime bound the baseline run.
	BaselineLines int
	BaselineTime  time.Duration
	// NoViewLines is the size of a run without the order_status collection,
	// to show what keeping it costs; 0 skips it.
	NoViewLines int
	// NoAggregationsLines is the size of a run without the aggregation
	// handlers, to show what they cost; 0 skips it.
	NoAggregationsLines int
	// NoClaimsLines is the size of a run without line claims
	// (status.line_claims false), to show what they cost; 0 skips it.
	NoClaimsLines int
	// OtherGuaranteeLines is the size of a run with the other
	// kafka.guarantee (exactly_once when the configuration says
	// at_least_once, and the other way round), to show what exactly once
	// costs; 0 skips it, as does the watermill-kafka client.
	OtherGuaranteeLines int
	// ReadOrders is the size to which the main run's order_status view is
	// grown before its reads are timed again; 0 times them only at the
	// run's own size.
	ReadOrders int
	Partitions int
	// Config gives the servers; without brokers and a MongoDB URI the
	// embedded ones are started.
	Config *config.Config
	// Exe is the orderflow binary run as the router and the relay.
	Exe    string
	Out    io.Writer
	Logger *slog.Logger
}

// Result holds every figure of a run.
type Result struct {
	Machine    string  `json:"machine"`
	Servers    string  `json:"servers"`
	Client     string  `json:"client"`
	Guarantee  string  `json:"guarantee"`
	Partitions int     `json:"partitions"`
	Lines      int     `json:"lines"`
	StartedAt  string  `json:"started_at"`
	CeilingLPS float64 `json:"ceiling_lines_per_s"`
	// RouterOnlyLPS is the Watermill Router alone: three hops of handlers
	// that do nothing, over memory instead of a broker.
	RouterOnlyLPS float64     `json:"router_only_lines_per_s"`
	Pipeline      RunFigures  `json:"pipeline"`
	HalfRate      *RunFigures `json:"half_rate,omitempty"`
	Small         *RunFigures `json:"small,omitempty"`
	BaselineLPS   float64     `json:"baseline_lines_per_s"`
	// BaselineLines is how many lines the baseline got through.
	BaselineLines        int     `json:"baseline_lines"`
	BaselineCommandsLine float64 `json:"baseline_mongodb_commands_per_line"`
	// Ratios.
	PipelineOverCeiling float64 `json:"pipeline_over_ceiling"`
	// NoView is the pipeline without the order_status collection, and
	// ViewCost the main run's throughput over it.
	NoView *RunFigures `json:"pipeline_without_order_status,omitempty"`
	// NoAggregations is the pipeline without the aggregations, and
	// AggregationsRatio the main run's throughput over it.
	NoAggregations    *RunFigures `json:"pipeline_without_aggregations,omitempty"`
	AggregationsRatio float64     `json:"pipeline_over_pipeline_without_aggregations,omitempty"`
	ViewCost          float64     `json:"pipeline_over_pipeline_without_order_status,omitempty"`
	// NoClaims is the pipeline without line claims, and ClaimsRatio the
	// main run's throughput over it.
	NoClaims    *RunFigures `json:"pipeline_without_line_claims,omitempty"`
	ClaimsRatio float64     `json:"pipeline_over_pipeline_without_line_claims,omitempty"`
	// OtherGuarantee is the pipeline with the other kafka.guarantee, and
	// ExactlyOnceOverAtLeastOnce the exactly-once run's throughput over
	// the at-least-once run's.
	OtherGuarantee             *RunFigures `json:"pipeline_with_other_guarantee,omitempty"`
	OtherGuaranteeName         string      `json:"other_guarantee,omitempty"`
	ExactlyOnceOverAtLeastOnce float64     `json:"exactly_once_over_at_least_once,omitempty"`
	RouterOnlyOverCeiling      float64     `json:"router_only_over_ceiling"`
	PipelineOverBaseline       float64     `json:"pipeline_over_baseline"`
	LargeOverSmall             float64     `json:"large_over_small_throughput,omitempty"`
	// Reads time the status reads after the main run, at its size and
	// grown to Options.ReadOrders.
	Reads []ReadFigures `json:"status_reads,omitempty"`
}

// RunFigures are the figures of one pipeline run.
type RunFigures struct {
	Lines            int     `json:"lines"`
	Seconds          float64 `json:"seconds"`
	LinesPerSecond   float64 `json:"lines_per_s"`
	RateLimit        float64 `json:"rate_limit_lines_per_s,omitempty"`
	P50ms            float64 `json:"latency_p50_ms"`
	P95ms            float64 `json:"latency_p95_ms"`
	P99ms            float64 `json:"latency_p99_ms"`
	CommandsPerLine  float64 `json:"mongodb_commands_per_line"`
	RouterCPUPer1000 float64 `json:"router_cpu_seconds_per_1000_lines"`
	// OtherCPUPer1000 is the benchmark process's CPU: the embedded broker
	// and MongoDB-wire server, and the generator.
	OtherCPUPer1000 float64   `json:"servers_and_generator_cpu_seconds_per_1000_lines"`
	RouterPeakMB    float64   `json:"router_peak_rss_mb"`
	RouterRSSMB     []float64 `json:"router_rss_mb_samples"`
	// DeliveredLines counts the delivered records: the external lines
	// delivered to the partners' directories.
	DeliveredLines int `json:"delivered_lines"`
	Duplicates     int `json:"duplicate_records"`
	NotFinal       int `json:"orders_not_final"`
}

type bench struct {
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	brokers []string
	kopts   []kgo.Opt
	mongo   *mongoclient.Conn
	noView  bool // runs leave out the order_status collection
	// noAggregations: runs leave out the aggregation handlers.
	noAggregations bool
	// noClaims: runs do not claim lines.
	noClaims bool
	// guarantee, when set, replaces kafka.guarantee in runs.
	guarantee string
	// reads, when set, is called with the main run's database and order
	// ids before it is dropped.
	reads  func(ctx context.Context, db *mongo.Database, ids []int64) error
	tmp    string
	runSeq int
}

// Run runs the benchmark and prints its table.
func Run(ctx context.Context, opts Options) (*Result, error) {
	b := &bench{opts: opts, log: opts.Logger, cfg: opts.Config}
	if b.log == nil {
		b.log = slog.Default()
	}
	var err error
	if b.tmp, err = os.MkdirTemp("", "orderflow-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.tmp)
	res := &Result{Machine: machine(), Client: b.cfg.Kafka.Client, Guarantee: b.cfg.Kafka.Guarantee, Partitions: opts.Partitions, Lines: opts.Lines,
		StartedAt: time.Now().UTC().Format(time.RFC3339)}
	res.Servers = "configured Kafka and MongoDB"
	if len(b.cfg.Kafka.Brokers) == 0 {
		// Persistence keeps the broker's memory bounded at a million lines
		// (about 10% slower); the ceiling runs on it too.
		k, err := embedded.StartKafka(embedded.KafkaConfig{Partitions: opts.Partitions, DataDir: filepath.Join(b.tmp, "kafka")})
		if err != nil {
			return nil, err
		}
		defer k.Close()
		b.cfg.Kafka.Brokers = k.Brokers()
		res.Servers = "embedded kfake (data dir)"
	}
	if b.cfg.MongoDB.URI == "" {
		m, err := embedded.StartMongo(embedded.MongoConfig{DataDir: filepath.Join(b.tmp, "mongo")})
		if err != nil {
			return nil, err
		}
		defer m.Close()
		b.cfg.MongoDB.URI = m.URI()
		res.Servers += " and embedded FerretDB (SQLite)"
	} else if res.Servers != "configured Kafka and MongoDB" {
		res.Servers += " and configured MongoDB"
	}
	b.brokers = b.cfg.Kafka.Brokers
	k, err := kafkaclient.New(b.cfg.Kafka, false, b.log)
	if err != nil {
		return nil, err
	}
	b.kopts = k.ClientOptions()
	if b.mongo, err = mongoclient.Connect(b.cfg.MongoDB); err != nil {
		return nil, err
	}
	defer b.mongo.Close(context.Background())

	say := func(format string, args ...any) { fmt.Fprintf(opts.Out, format+"\n", args...) }
	say("ceiling: %d lines through three hops of raw Kafka", opts.Lines)
	if res.CeilingLPS, err = b.ceiling(ctx, opts.Lines); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	say("  %.0f lines/s", res.CeilingLPS)

	say("Watermill Router alone: %d lines through three hops of handlers that do nothing, no broker", opts.Lines)
	if res.RouterOnlyLPS, err = routerOnly(ctx, opts.Lines, opts.Partitions); err != nil {
		return nil, err
	}
	say("  %.0f lines/s", res.RouterOnlyLPS)
	res.RouterOnlyOverCeiling = res.RouterOnlyLPS / res.CeilingLPS

	say("pipeline: %d lines, generated to delivered (every line routed, every external line delivered)", opts.Lines)
	b.reads = func(ctx context.Context, db *mongo.Database, ids []int64) error {
		fig, err := measureReads(ctx, db, len(ids), ids)
		if err != nil {
			return err
		}
		res.Reads = append(res.Reads, fig)
		if opts.ReadOrders > len(ids) {
			say("  growing order_status to %d orders to time its reads", opts.ReadOrders)
			more, err := growView(ctx, db, ids[len(ids)-1]+1_000_000, opts.ReadOrders-len(ids))
			if err != nil {
				return err
			}
			if fig, err = measureReads(ctx, db, opts.ReadOrders, append(ids, more...)); err != nil {
				return err
			}
			res.Reads = append(res.Reads, fig)
		}
		return nil
	}
	res.Pipeline, err = b.pipeline(ctx, opts.Lines, 0)
	b.reads = nil
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	say("  %.0f lines/s", res.Pipeline.LinesPerSecond)
	res.PipelineOverCeiling = res.Pipeline.LinesPerSecond / res.CeilingLPS

	// without runs the pipeline once more with *leaveOut set, and returns
	// its figures and the main run's throughput over its.
	without := func(what string, lines int, leaveOut *bool) (*RunFigures, float64, error) {
		say("pipeline without %s: %d lines", what, lines)
		*leaveOut = true
		f, err := b.pipeline(ctx, lines, 0)
		*leaveOut = false
		if err != nil {
			return nil, 0, fmt.Errorf("pipeline without %s: %w", what, err)
		}
		say("  %.0f lines/s", f.LinesPerSecond)
		return &f, res.Pipeline.LinesPerSecond / f.LinesPerSecond, nil
	}
	if opts.NoViewLines > 0 {
		if res.NoView, res.ViewCost, err = without("the order_status collection", opts.NoViewLines, &b.noView); err != nil {
			return nil, err
		}
	}
	if opts.NoAggregationsLines > 0 && aggregating(b.cfg) {
		if res.NoAggregations, res.AggregationsRatio, err = without("the aggregations", opts.NoAggregationsLines, &b.noAggregations); err != nil {
			return nil, err
		}
	}
	if opts.NoClaimsLines > 0 && b.cfg.Status.LineClaimsEnabled() {
		if res.NoClaims, res.ClaimsRatio, err = without("line claims", opts.NoClaimsLines, &b.noClaims); err != nil {
			return nil, err
		}
	}
	if opts.OtherGuaranteeLines > 0 && b.cfg.Kafka.Client == "franz" {
		b.guarantee = config.ExactlyOnce
		if b.cfg.Kafka.Guarantee == config.ExactlyOnce {
			b.guarantee = config.AtLeastOnce
		}
		say("pipeline with kafka.guarantee %s: %d lines", b.guarantee, opts.OtherGuaranteeLines)
		og, err := b.pipeline(ctx, opts.OtherGuaranteeLines, 0)
		other := b.guarantee
		b.guarantee = ""
		if err != nil {
			return nil, fmt.Errorf("pipeline with %s: %w", other, err)
		}
		res.OtherGuarantee, res.OtherGuaranteeName = &og, other
		res.ExactlyOnceOverAtLeastOnce = og.LinesPerSecond / res.Pipeline.LinesPerSecond
		if other == config.AtLeastOnce {
			res.ExactlyOnceOverAtLeastOnce = res.Pipeline.LinesPerSecond / og.LinesPerSecond
		}
		say("  %.0f lines/s", og.LinesPerSecond)
	}
	if opts.HalfRateLines > 0 {
		rate := res.Pipeline.LinesPerSecond / 2
		say("pipeline at half its maximum rate (%.0f lines/s): %d lines", rate, opts.HalfRateLines)
		half, err := b.pipeline(ctx, opts.HalfRateLines, rate)
		if err != nil {
			return nil, fmt.Errorf("half-rate pipeline: %w", err)
		}
		res.HalfRate = &half
	}
	if opts.SmallLines > 0 {
		say("pipeline: %d lines, for scaling", opts.SmallLines)
		small, err := b.pipeline(ctx, opts.SmallLines, 0)
		if err != nil {
			return nil, fmt.Errorf("small pipeline: %w", err)
		}
		res.Small = &small
		res.LargeOverSmall = res.Pipeline.LinesPerSecond / small.LinesPerSecond
	}
	if opts.BaselineLines > 0 {
		say("plain baseline: up to %d lines or %v", opts.BaselineLines, opts.BaselineTime)
		br, err := b.baseline(ctx, opts.BaselineLines, opts.BaselineTime)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		res.BaselineLines = br.Lines
		res.BaselineLPS = float64(br.Lines) / br.Took.Seconds()
		res.BaselineCommandsLine = float64(br.Commands) / float64(br.Lines)
		res.PipelineOverBaseline = res.Pipeline.LinesPerSecond / res.BaselineLPS
		say("  %.1f lines/s over %d lines", res.BaselineLPS, br.Lines)
	}
	return res, nil
}

func (b *bench) baseline(ctx context.Context, lines int, maxTime time.Duration) (baselineResult, error) {
	b.runSeq++
	name := fmt.Sprintf("bench%d_baseline_%d", os.Getpid(), b.runSeq)
	m, err := mongoclient.Connect(config.MongoConfig{URI: b.cfg.MongoDB.URI, Database: name, Timeout: config.D(10 * time.Second)})
	if err != nil {
		return baselineResult{}, err
	}
	defer m.Close(context.Background())
	defer m.DB.Drop(context.Background())
	ds, err := metastore.SampleDataset()
	if err != nil {
		return baselineResult{}, err
	}
	store := metastore.NewStore(m.DB)
	if _, err := store.Apply(ctx, ds); err != nil {
		return baselineResult{}, err
	}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return baselineResult{}, err
	}
	bl := &baseline{brokers: b.brokers, db: m.DB, group: name, log: watermill.NopLogger{}}
	for i, t := range []string{"raw", "valid", "enriched", "internal", "external"} {
		bl.topics[i] = name + "_" + t
	}
	if err := b.createTopics(ctx, bl.topics[:]...); err != nil {
		return baselineResult{}, err
	}
	before := m.Commands.Total()
	res, err := bl.run(ctx, snap.Catalog(), lines, maxTime)
	res.Commands = m.Commands.Total() - before
	return res, err
}

func (b *bench) child(ctx context.Context, args ...string) (*child, error) {
	cmd := exec.Command(b.opts.Exe, args...)
	stderr := &limitedWriter{n: 1 << 20}
	cmd.Stderr = stderr
	cmd.Env = append(os.Environ(), "ORDERFLOW_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", b.opts.Exe, err)
	}
	c := &child{cmd: cmd, stderr: stderr, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}
