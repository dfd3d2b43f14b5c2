// Package demo is `orderflow demo`: the whole pipeline on one machine,
// embedded servers included, with a batch of orders, until every order is
// final.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/app"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/embedded"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/progress"
	"github.com/orderflow/orderflow/status"
)

// Options configure `orderflow demo`.
type Options struct {
	Orders int
	Rate   float64
	// DataDir keeps the embedded servers' data between runs.
	DataDir string
	// Exit stops everything once the orders are final; otherwise the demo
	// keeps running so the dashboard and API can be explored.
	Exit   bool
	Out    io.Writer
	TTY    bool
	Logger *slog.Logger
	// Ready, when set, is called once the pipeline runs, with the
	// configuration in effect (the addresses of the embedded servers).
	Ready func(*config.Config)
	// Final, when set, is called once every order is final, with the
	// dashboard's URL, while the pipeline still runs.
	Final func(dashboard string)
}

// Run runs the whole pipeline on one machine: embedded servers when none
// are configured, the sample metadata, a router, and a batch of orders,
// until every order is final.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	out := opts.Out
	log := opts.Logger
	var started []string
	if len(cfg.Kafka.Brokers) == 0 {
		dir := filepath.Join(opts.DataDir, "kafka")
		k, err := embedded.StartKafka(embedded.KafkaConfig{DataDir: dir})
		if err != nil {
			return err
		}
		defer k.Close()
		cfg.Kafka.Brokers = k.Brokers()
		started = append(started, fmt.Sprintf("Kafka-protocol broker (kfake)\t%s\tdata in %s", strings.Join(k.Brokers(), ","), dir))
	}
	if cfg.MongoDB.URI == "" {
		dir := filepath.Join(opts.DataDir, "mongo")
		m, err := embedded.StartMongo(embedded.MongoConfig{DataDir: dir})
		if err != nil {
			return err
		}
		defer m.Close()
		cfg.MongoDB.URI = m.URI()
		started = append(started, fmt.Sprintf("MongoDB-wire server (FerretDB)\t%s\tdata in %s", m.URI(), dir))
	}

	if cfg.HTTP.Listen != "" {
		// Another demo, or anything else, may hold the configured port.
		if ln, err := net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			fmt.Fprintf(out, "%s is taken; the dashboard gets a free port instead\n", cfg.HTTP.Listen)
			cfg.HTTP.Listen = "127.0.0.1:0"
		} else {
			ln.Close()
		}
	}
	if err := loadSample(ctx, cfg, out); err != nil {
		return err
	}
	pipeline, err := app.NewPipeline(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	running := make(chan struct{})
	runErr := make(chan error, 1)
	go func() { runErr <- pipeline.Run(runCtx, running) }()
	select {
	case <-running:
	case err := <-runErr:
		return err
	}
	if opts.Ready != nil {
		opts.Ready(cfg)
	}

	fmt.Fprintf(out, "generating %d orders\n", opts.Orders)
	bar := progress.New(out, "generate", opts.Orders, opts.TTY)
	res, err := generator.Generate(ctx, cfg, generator.Options{Orders: opts.Orders, Rate: opts.Rate, Logger: log, Progress: bar.Set,
		OnStatusWrite: pipeline.Metrics().OnStatusWrite})
	bar.Finish()
	if err != nil {
		stop()
		<-runErr
		return err
	}
	orders, waitErr := waitFinal(ctx, pipeline.Status(), res, out, opts.TTY)
	took := time.Since(res.StartedAt)
	printSummary(out, res, orders, took)
	if err := printAggregates(ctx, out, cfg); err != nil {
		fmt.Fprintln(out, "aggregations: not read:", err)
	}
	fmt.Fprintln(out, "\nstarted:")
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	for _, s := range started {
		fmt.Fprintln(tw, "  "+s)
	}
	if url := pipeline.HTTPURL(); url != "" {
		fmt.Fprintf(tw, "  dashboard and order API\t%s\tmetrics at %smetrics\n", url, url)
	}
	if len(started) == 0 {
		fmt.Fprintln(tw, "  nothing else: the configured Kafka and MongoDB were used")
	}
	for _, p := range cfg.Delivery.Partners {
		if p.Sink.Type == "dir" {
			fmt.Fprintf(tw, "  partner %s\t\tfiles in %s\n", p.Name, p.Sink.Path)
		}
	}
	tw.Flush()
	switch {
	case !opts.Exit || len(started) == 0:
		// The servers are still up (or they are the configured ones).
		fmt.Fprintf(out, "\ncheck an order: orderflow status --brokers %s --mongodb-uri %s %d\n",
			strings.Join(cfg.Kafka.Brokers, ","), cfg.MongoDB.URI, res.FirstID)
	default:
		// --exit stops the embedded servers with the demo: point at what
		// still works once they are gone.
		fmt.Fprintf(out, "\nthe embedded servers stop with the demo; their data stays in %s. To look at it again:\n"+
			"  orderflow embedded --data %s     (Kafka on 127.0.0.1:9092, MongoDB on 127.0.0.1:27017)\n"+
			"  orderflow status --brokers 127.0.0.1:9092 --mongodb-uri mongodb://127.0.0.1:27017/ %d\n",
			opts.DataDir, opts.DataDir, res.FirstID)
	}
	if waitErr == nil && opts.Final != nil {
		opts.Final(pipeline.HTTPURL())
	}
	if waitErr == nil && !opts.Exit {
		fmt.Fprintln(out, "\nthe pipeline keeps running; press Ctrl-C to stop")
		select {
		case <-ctx.Done():
		case err := <-runErr:
			return err
		}
	}
	stop()
	if err := <-runErr; err != nil {
		return err
	}
	return waitErr
}

func loadSample(ctx context.Context, cfg *config.Config, out io.Writer) error {
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	res, err := metastore.LoadSample(ctx, m.DB)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "metadata: %s\n", res)
	return nil
}

// waitFinal polls the statuses of a generator run's orders until all are
// final.
func waitFinal(ctx context.Context, reader *status.Reader, res generator.Result, out io.Writer, tty bool) ([]*status.Order, error) {
	bar := progress.New(out, "process", res.Orders, tty)
	defer bar.Finish()
	for {
		orders, err := reader.Range(ctx, res.FirstID, res.LastID)
		if err != nil {
			return nil, err
		}
		final := 0
		for _, o := range orders {
			if o.Final {
				final++
			}
		}
		bar.Set(final)
		if final >= res.Orders {
			return orders, nil
		}
		select {
		case <-ctx.Done():
			return orders, errors.New("stopped before every order was final")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printSummary(out io.Writer, res generator.Result, orders []*status.Order, took time.Duration) {
	s := status.Summarize(orders)
	fmt.Fprintf(out, "\n%d orders (%d lines) final in %s, %.0f lines/s\n", res.Orders, res.Lines, took.Round(time.Millisecond), float64(res.Lines)/took.Seconds())
	var rows []string
	for st, n := range s.ByStatus {
		if n > 0 {
			rows = append(rows, fmt.Sprintf("  %-10s %6d", st, n))
		}
	}
	sort.Strings(rows)
	for _, r := range rows {
		fmt.Fprintln(out, r)
	}
}

// printAggregates prints the revenue and the top three destinations, once
// the aggregations have caught up (their rollups are written each second).
func printAggregates(ctx context.Context, out io.Writer, cfg *config.Config) error {
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	r := aggregate.NewReader(m.DB, cfg)
	names := r.Names()
	if !slices.Contains(names, "order_price") && !slices.Contains(names, "location_product_count") {
		return nil
	}
	read := func() (price, places aggregate.View, err error) {
		if slices.Contains(names, "order_price") {
			if price, err = r.View(ctx, "order_price", 0); err != nil {
				return
			}
		}
		if slices.Contains(names, "location_product_count") {
			places, err = r.View(ctx, "location_product_count", 3)
		}
		return
	}
	// Wait until two reads a second and a half apart agree.
	price, places, err := read()
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(1500 * time.Millisecond):
		}
		p2, l2, err2 := read()
		if err2 != nil {
			return err2
		}
		same := p2.Groups == price.Groups && l2.Totals["total_product"] == places.Totals["total_product"]
		price, places = p2, l2
		if same {
			break
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\naggregations:")
	if price.Name != "" {
		fmt.Fprintf(out, "  revenue %.2f in %d orders, %.2f an order (order_price)\n", price.Totals["total_amount"], price.Groups, price.PerGroup["total_amount"])
	}
	if places.Name != "" && len(places.Top) > 0 {
		var top []string
		for _, t := range places.Top {
			top = append(top, fmt.Sprintf("%v (location %v): %v", t["to_location_name"], t["to_location"], t["total_product"]))
		}
		fmt.Fprintf(out, "  top destinations: %s (location_product_count)\n", strings.Join(top, ", "))
	}
	return nil
}
