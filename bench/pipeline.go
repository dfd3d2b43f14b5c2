package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/status"
	"go.yaml.in/yaml/v3"
)

// pipeline runs the router as a child process on fresh topics and a fresh
// database, generates about lines lines (at rate lines/s when set), and
// measures until every line is routed or rejected, every external line
// delivered, and every aggregation has counted what it must.
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
	reader := status.NewReader(db.Collection(status.Collection), cfg.DeliveryEnabled())
	aggs := aggregate.NewReader(db, cfg)
	countable := -1 // the lines order_price counts, once all are routed
	delivering := cfg.DeliveryEnabled()
	external := 0 // the lines to deliver, once all are routed
	var lastExact time.Time
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
		// The router's own counters say when to look: the exact counts
		// read the records, a scan on FerretDB that at a million lines
		// would slow the server it measures, so they run at most every
		// 2 s, once the counters (which count repeats too) are there.
		if countable < 0 {
			if m := scrapeSum(metricsURL, routedMetric, rejectedMetric); m < float64(gen.Lines) || time.Since(lastExact) < 2*time.Second {
				continue
			}
			lastExact = time.Now()
			n, err := reader.CountRecords(ctx, gen.FirstID, gen.LastID, status.Routed, status.Rejected)
			if err != nil {
				return fig, err
			}
			if n < gen.Lines {
				continue
			}
			// Every line is routed or rejected: what order_price must
			// count, and the lines to deliver, are known once.
			rejected, err := reader.CountRecords(ctx, gen.FirstID, gen.LastID, status.Rejected)
			if err != nil {
				return fig, err
			}
			countable = gen.Lines - rejected
			if delivering {
				if external, err = reader.CountRecordsRouted(ctx, gen.FirstID, gen.LastID, "external"); err != nil {
					return fig, err
				}
			}
		}
		if delivering && fig.DeliveredLines < external {
			if m := scrapeSum(metricsURL, deliveredMetric); m < float64(external) || time.Since(lastExact) < 2*time.Second {
				continue
			}
			lastExact = time.Now()
			n, err := reader.CountRecords(ctx, gen.FirstID, gen.LastID, status.Delivered)
			if err != nil {
				return fig, err
			}
			if fig.DeliveredLines = n; n < external {
				continue
			}
		}
		if done, err := b.aggregated(ctx, aggs, countable); err != nil || done {
			if err != nil {
				return fig, err
			}
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

// The router's counters of lines that left the pipeline's stages, by the
// shipped handler names.
const (
	routedMetric    = `orderflow_lines_total{handler="route",status="routed"}`
	rejectedMetric  = `orderflow_lines_total{handler="validate",status="rejected"}`
	deliveredMetric = `orderflow_lines_total{handler="deliver",status="delivered"}`
)

// scrapeSum adds the samples named (a metric, or a metric with its whole
// label set); an unreadable endpoint counts 0.
func scrapeSum(url string, names ...string) float64 {
	sum := 0.0
	for _, n := range names {
		v, _ := scrape(url, n)
		sum += v
	}
	return sum
}

// runConfig writes the configuration of one pipeline run: the shipped
// pipeline, delivery included, on topics, groups, partner directories and
// a database of its own, with a metrics listener on a free port.
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
		if b.noAggregations && h.Aggregate != nil {
			off := false
			h.Enabled = &off
		}
		if a := h.Aggregate; a != nil {
			if a.Repartition != "" {
				a.Repartition = rename(a.Repartition)
			}
			if a.Window != nil && a.Window.Topic != "" {
				a.Window.Topic = rename(a.Window.Topic)
			}
		}
	}
	for i := range cfg.Delivery.Partners {
		if sink := &cfg.Delivery.Partners[i].Sink; sink.Type == "dir" {
			sink.Path = filepath.Join(b.tmp, name, cfg.Delivery.Partners[i].Name)
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
	if b.noClaims {
		off := false
		cfg.Status.LineClaims = &off
	}
	if b.guarantee != "" {
		cfg.Kafka.Guarantee = b.guarantee
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

// aggregating reports whether the configuration runs aggregations.
func aggregating(cfg *config.Config) bool {
	for _, h := range cfg.Handlers {
		if h.Aggregate != nil && h.IsEnabled() {
			return true
		}
	}
	return false
}

// aggregated reports whether the run's aggregations have caught up: with
// order_price on, once it has counted the countable lines, every line that
// was not rejected (its rollups are written once a second). Without it
// there is nothing to wait for.
func (b *bench) aggregated(ctx context.Context, r *aggregate.Reader, countable int) (bool, error) {
	if b.noAggregations || !slices.Contains(r.Names(), "order_price") {
		return true, nil
	}
	v, err := r.View(ctx, "order_price", 0)
	if err != nil {
		return false, err
	}
	return int(v.Totals["lines"]) >= countable, nil
}
