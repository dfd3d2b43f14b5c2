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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.yaml.in/yaml/v3"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/embedded"
	"github.com/orderflow/orderflow/generator"
	_ "github.com/orderflow/orderflow/handlers" // registers the processors the configuration names
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
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
	NoView                *RunFigures `json:"pipeline_without_order_status,omitempty"`
	ViewCost              float64     `json:"pipeline_over_pipeline_without_order_status,omitempty"`
	RouterOnlyOverCeiling float64     `json:"router_only_over_ceiling"`
	PipelineOverBaseline  float64     `json:"pipeline_over_baseline"`
	LargeOverSmall        float64     `json:"large_over_small_throughput,omitempty"`
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
	Duplicates      int       `json:"duplicate_records"`
	NotFinal        int       `json:"orders_not_final"`
}

type bench struct {
	opts    Options
	log     *slog.Logger
	cfg     *config.Config
	brokers []string
	kopts   []kgo.Opt
	mongo   *mongoclient.Conn
	noView  bool // runs leave out the order_status collection
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
	res := &Result{Machine: machine(), Client: b.cfg.Kafka.Client, Partitions: opts.Partitions, Lines: opts.Lines,
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

	say("pipeline: %d lines, generate to routed", opts.Lines)
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

	if opts.NoViewLines > 0 {
		say("pipeline without the order_status collection: %d lines", opts.NoViewLines)
		b.noView = true
		nv, err := b.pipeline(ctx, opts.NoViewLines, 0)
		b.noView = false
		if err != nil {
			return nil, fmt.Errorf("pipeline without order_status: %w", err)
		}
		res.NoView = &nv
		res.ViewCost = res.Pipeline.LinesPerSecond / nv.LinesPerSecond
		say("  %.0f lines/s", nv.LinesPerSecond)
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

// ceiling pushes lines through three relay hops and measures lines/s from
// the first produce to the last record on the last topic.
func (b *bench) ceiling(ctx context.Context, lines int) (float64, error) {
	b.runSeq++
	prefix := fmt.Sprintf("bench%d_ceiling_%d", os.Getpid(), b.runSeq)
	topics := []string{prefix + "_0", prefix + "_1", prefix + "_2", prefix + "_3"}
	if err := b.createTopics(ctx, topics...); err != nil {
		return 0, err
	}
	values, keys := sampleLines(lines)
	relay, err := b.child(ctx, "bench-relay", "--brokers", strings.Join(b.brokers, ","), "--topics", strings.Join(topics, ","), "--group", prefix)
	if err != nil {
		return 0, err
	}
	defer relay.stop()
	if err := b.waitGroups(ctx, prefix, 3); err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(200_000)}, b.kopts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := range values {
			cl.Produce(ctx, &kgo.Record{Topic: topics[0], Key: keys[i], Value: values[i]}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			})
		}
	}()
	for {
		n, err := b.endOffsets(ctx, cl, topics[3])
		if err != nil {
			return 0, err
		}
		if n >= int64(lines) {
			return float64(lines) / time.Since(start).Seconds(), nil
		}
		select {
		case err := <-errc:
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-relay.exited:
			return 0, fmt.Errorf("relay exited: %s", relay.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pipeline runs the router as a child process on fresh topics and a fresh
// database, generates about lines lines (at rate lines/s when set), and
// measures until every line is routed or rejected.
func (b *bench) pipeline(ctx context.Context, lines int, rate float64) (RunFigures, error) {
	var fig RunFigures
	b.runSeq++
	name := fmt.Sprintf("bench%d_run%d", os.Getpid(), b.runSeq)
	cfg, file, err := b.runConfig(name)
	if err != nil {
		return fig, err
	}
	db := b.mongo.Client.Database(cfg.MongoDB.Database)
	defer db.Drop(context.Background())
	ds, err := metastore.SampleDataset()
	if err != nil {
		return fig, err
	}
	if _, err := metastore.NewStore(db).Apply(ctx, ds); err != nil {
		return fig, err
	}
	if err := b.createTopics(ctx, sortedTopics(cfg)...); err != nil {
		return fig, err
	}
	router, err := b.child(ctx, "run", "--config", file, "--brokers", strings.Join(b.brokers, ","), "--mongodb-uri", b.cfg.MongoDB.URI)
	if err != nil {
		return fig, err
	}
	defer router.stop()
	metricsURL := "http://" + cfg.HTTP.Listen
	if err := waitReady(ctx, metricsURL, router); err != nil {
		return fig, err
	}
	cpu0, _ := scrape(metricsURL, "process_cpu_seconds_total")
	cmd0, _ := scrape(metricsURL, "orderflow_mongodb_commands_total")

	orders := max(1, int(math.Round(float64(lines)/2.5)))
	genOpts := generator.Options{Orders: orders, Seed: uint64(b.runSeq), Logger: b.log}
	if rate > 0 {
		genOpts.Rate = rate / 2.5
		fig.RateLimit = rate
	}
	genDone := make(chan struct{})
	var gen generator.Result
	var genErr error
	self0 := selfCPU()
	start := time.Now()
	go func() {
		defer close(genDone)
		gen, genErr = generator.Generate(ctx, cfg, genOpts)
	}()
	reader := status.NewReader(db.Collection(status.Collection), false)
	var rss []float64
	lastSample := time.Time{}
	generated := false
	for {
		if time.Since(lastSample) >= time.Second {
			if mb, ok := rssMB(router.cmd.Process.Pid, "VmRSS"); ok {
				rss = append(rss, mb)
			}
			lastSample = time.Now()
		}
		select {
		case <-genDone:
			if genErr != nil {
				return fig, genErr
			}
			generated = true
			genDone = nil
		case <-router.exited:
			return fig, fmt.Errorf("router exited: %s", tail(router.stderr.String()))
		case <-ctx.Done():
			return fig, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if !generated {
			continue
		}
		n, err := reader.CountRecords(ctx, gen.FirstID, gen.LastID, status.Routed, status.Rejected)
		if err != nil {
			return fig, err
		}
		if n >= gen.Lines {
			break
		}
	}
	took := time.Since(start)
	fig.OtherCPUPer1000 = (selfCPU() - self0) / float64(gen.Lines) * 1000
	fig.Lines = gen.Lines
	fig.Seconds = took.Seconds()
	fig.LinesPerSecond = float64(gen.Lines) / took.Seconds()
	if mb, ok := rssMB(router.cmd.Process.Pid, "VmRSS"); ok {
		rss = append(rss, mb)
	}
	fig.RouterRSSMB = sampleEvenly(rss, 8)
	fig.RouterPeakMB, _ = rssMB(router.cmd.Process.Pid, "VmHWM")
	cpu1, _ := scrape(metricsURL, "process_cpu_seconds_total")
	cmd1, _ := scrape(metricsURL, "orderflow_mongodb_commands_total")
	fig.RouterCPUPer1000 = (cpu1 - cpu0) / float64(gen.Lines) * 1000
	fig.CommandsPerLine = (cmd1 - cmd0 + float64(gen.MongoCommands)) / float64(gen.Lines)
	router.stop()

	// Exact figures, deduplicated, from the records.
	times, err := reader.FirstTimes(ctx, gen.FirstID, gen.LastID, status.Generated, status.Routed)
	if err != nil {
		return fig, err
	}
	var lat []float64
	for _, ts := range times {
		if !ts[0].IsZero() && !ts[1].IsZero() {
			lat = append(lat, float64(ts[1].Sub(ts[0]).Microseconds())/1000)
		}
	}
	slices.Sort(lat)
	fig.P50ms, fig.P95ms, fig.P99ms = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
	all, err := reader.Range(ctx, gen.FirstID, gen.LastID)
	if err != nil {
		return fig, err
	}
	sum := status.Summarize(all)
	fig.NotFinal = sum.NotFinal + (gen.Orders - sum.Orders)
	records, _ := reader.CountRecords(ctx, gen.FirstID, gen.LastID, status.Generated, status.Validated, status.Enriched, status.Routed, status.Rejected)
	distinct := sum.LinesByStage[status.Generated] + sum.LinesByStage[status.Validated] + sum.LinesByStage[status.Enriched] + sum.LinesByStage[status.Routed] + sum.LinesRejected
	fig.Duplicates = records - distinct
	if b.reads != nil && !b.noView {
		ids := make([]int64, len(all))
		for i, o := range all {
			ids[i] = o.ID
		}
		if err := b.reads(ctx, db, ids); err != nil {
			return fig, fmt.Errorf("status reads: %w", err)
		}
	}
	return fig, nil
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

// runConfig writes the configuration of one pipeline run: the shipped
// pipeline on topics, groups and a database of its own, without the
// delivery stage (the figures are generate to routed), with a metrics
// listener on a free port.
func (b *bench) runConfig(name string) (*config.Config, string, error) {
	data, err := yaml.Marshal(b.cfg)
	if err != nil {
		return nil, "", err
	}
	var cfg config.Config
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, "", err
	}
	cfg.Kafka.Brokers = nil
	cfg.MongoDB.URI = ""
	cfg.MongoDB.Database = name
	cfg.Kafka.SASL.Password, cfg.MongoDB.Password = "", ""
	rename := func(t string) string { return name + "_" + t }
	topics := map[string]config.TopicConfig{}
	for t := range cfg.Topics {
		topics[rename(t)] = config.TopicConfig{Partitions: b.opts.Partitions}
	}
	cfg.Topics = topics
	cfg.Generator.Topic = rename(cfg.Generator.Topic)
	for _, stack := range [][]config.Middleware{cfg.Middleware} {
		for _, m := range stack {
			if m.Poison != nil {
				m.Poison.Topic = rename(m.Poison.Topic)
			}
		}
	}
	for i := range cfg.Handlers {
		h := &cfg.Handlers[i]
		h.Subscribe, h.Group = rename(h.Subscribe), rename(h.Group)
		if h.Publish != "" {
			h.Publish = rename(h.Publish)
		}
		for r, t := range h.Routes {
			h.Routes[r] = rename(t)
		}
		for _, m := range h.Middleware {
			if m.Poison != nil {
				m.Poison.Topic = rename(m.Poison.Topic)
			}
		}
		if h.Processor == "deliver" {
			off := false
			h.Enabled = &off
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg.HTTP.Listen = "127.0.0.1:" + strconv.Itoa(port)
	if b.noView {
		off := false
		cfg.Status.OrderStatus = &off
	}
	cfg.Log.Level, cfg.Log.Format = "warn", "json"
	out, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(b.tmp, name+".yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return nil, "", err
	}
	loaded, err := config.Load(out, file, nil)
	if err != nil {
		return nil, "", fmt.Errorf("benchmark configuration: %w", err)
	}
	loaded.Kafka.Brokers = b.brokers
	loaded.MongoDB.URI = b.cfg.MongoDB.URI
	return loaded, file, nil
}

func sortedTopics(cfg *config.Config) []string {
	var out []string
	for t := range cfg.Topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (b *bench) createTopics(ctx context.Context, topics ...string) error {
	want := map[string]config.TopicConfig{}
	for _, t := range topics {
		want[t] = config.TopicConfig{Partitions: b.opts.Partitions}
	}
	k, err := kafkaclient.New(b.cfg.Kafka, false, b.log)
	if err != nil {
		return err
	}
	return k.EnsureTopics(ctx, want)
}

func (b *bench) endOffsets(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < int32(b.opts.Partitions); p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			n += p.Offset
		}
	}
	return n, nil
}

// waitGroups waits until the relay's n consumer groups have members.
func (b *bench) waitGroups(ctx context.Context, prefix string, n int) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, b.kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		for i := range n {
			req.Groups = append(req.Groups, fmt.Sprintf("%s-%d", prefix, i))
		}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			stable := 0
			for _, g := range resp.Groups {
				if g.State == "Stable" && len(g.Members) > 0 {
					stable++
				}
			}
			if stable == n {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("relay groups did not become stable")
}

// sampleLines encodes lines of random orders, for the ceiling to carry the
// same bytes the pipeline does.
func sampleLines(n int) (values, keys [][]byte) {
	ds, _ := metastore.SampleDataset()
	var cat order.Catalog
	for _, p := range ds.Products {
		cat.ProductIDs = append(cat.ProductIDs, p.Value.ProductID)
	}
	for _, l := range ds.Locations {
		cat.LocationIDs = append(cat.LocationIDs, l.Value.LocationID)
	}
	gen, _ := order.NewGenerator(cat, 0, 1)
	for id := int64(1); len(values) < n; id++ {
		for _, l := range order.Flatten(gen.Order(id)) {
			if len(values) == n {
				break
			}
			values = append(values, order.Encode(l))
			keys = append(keys, []byte(l.Key()))
		}
	}
	return values, keys
}

type child struct {
	cmd    *exec.Cmd
	stderr *limitedWriter
	exited chan struct{}
	done   bool
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

// stop ends the child with SIGTERM, and SIGKILL after 30 s.
func (c *child) stop() {
	if c.done {
		return
	}
	c.done = true
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func waitReady(ctx context.Context, url string, c *child) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("router exited: %s", tail(c.stderr.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("router not ready after 2 minutes")
}

// scrape sums the samples of a metric on a Prometheus endpoint.
func scrape(url, name string) (float64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// rssMB reads a memory figure (VmRSS, VmHWM) of a process, in MB.
func rssMB(pid int, field string) (float64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sampleEvenly(v []float64, n int) []float64 {
	if len(v) <= n {
		return v
	}
	out := make([]float64, n)
	for i := range n {
		out[i] = v[i*(len(v)-1)/(n-1)]
	}
	return out
}

// selfCPU is the CPU time of this process so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
		if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s %s/%s", model, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// limitedWriter keeps the first n bytes a child writes, for error messages.
type limitedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := min(len(p), l.n); k > 0 {
		l.n -= k
		l.buf.Write(p[:k])
	}
	return len(p), nil
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// WriteJSON writes the result to a file.
func (r *Result) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
