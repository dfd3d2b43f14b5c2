// Command orderflow is an order-processing pipeline: orders are generated,
// validated against a fraud list, enriched with location names, routed
// internally or externally, and delivered to partners, on a Watermill router
// over Kafka, with metadata and order status in MongoDB.
//
// Run `orderflow help` for the commands.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/app"
	"github.com/orderflow/orderflow/bench"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/demo"
	"github.com/orderflow/orderflow/embedded"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/poison"
	"github.com/orderflow/orderflow/progress"
	"github.com/orderflow/orderflow/status"
	"github.com/orderflow/orderflow/tracing"
)

// defaultConfig is orderflow.yaml as shipped, used when no file is given
// and there is none in the working directory.
//
//go:embed orderflow.yaml
var defaultConfig []byte

const usage = `orderflow: an order pipeline on Watermill, Kafka and MongoDB.

Usage:
  orderflow demo [--orders N] [--rate R] [--data DIR] [--exit]
      Everything on this machine: embedded Kafka and MongoDB (unless
      configured), the sample metadata, the router, and N orders.
  orderflow run [--only NAME,...]
      The router process. Run several to share the work.
  orderflow generate --orders N [--rate R] [--seed S]
      Publish random orders to raw_order.
  orderflow status [--json] [--all] [ORDER_ID...]
      The status of the given orders, or of all, then a count per status.
  orderflow metadata load [PATH...]
      Load fraud IPs, locations and products: the bundled sample, or files
      (JSON arrays, JSON lines, mongoexport output).
  orderflow config check | print | env
      Validate the configuration, print it with secrets masked, or list
      every ORDERFLOW_ variable that overrides one of its settings.
  orderflow topology [--mermaid]
      The configured graph: sources, handlers with their groups, inputs,
      outputs and middleware, and the poison queue; as Mermaid with --mermaid.
  orderflow poison list [--topic T] [--json]
      What is in the poison queue, and why.
  orderflow poison replay (--filter FIELD=VALUE ... | --all) [--force]
      Publish poisoned messages back to their original topics. Fields:
      handler, topic, group, kind, key, order, id, reason (a substring).
  orderflow bench [--lines N] [--partitions P] [--json FILE]
      Measure the pipeline against raw Kafka and a plain Watermill baseline.
  orderflow embedded [--kafka ADDR] [--mongo ADDR] [--data DIR]
      Run the embedded Kafka-protocol broker and MongoDB-wire server alone.

Flags every command takes:
  --config FILE        configuration file (default: $ORDERFLOW_CONFIG, else
                       ./orderflow.yaml if present, else the shipped one)
  --brokers LIST       Kafka brokers, comma-separated ($ORDERFLOW_KAFKA_BROKERS)
  --mongodb-uri URI    MongoDB connection string ($ORDERFLOW_MONGODB_URI)
  --log-level LEVEL    debug, info, warn or error
`

// stopProfile ends the CPU profile --cpuprofile started.
var stopProfile = func() {}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orderflow:", err)
		var usageErr usageError
		var cfgErr *config.ConfigError
		if errors.As(err, &usageErr) || errors.As(err, &cfgErr) {
			os.Exit(2) // the command line or the configuration: nothing was started
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	var help helpRequest
	if errors.As(err, &help) {
		fmt.Fprintf(stdout, "Usage of %s:\n", help.fs.Name())
		help.fs.SetOutput(stdout)
		help.fs.PrintDefaults()
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "generate":
		return cmdGenerate(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "metadata":
		if len(rest) == 0 || rest[0] != "load" {
			return usageError{"usage: orderflow metadata load [PATH...]"}
		}
		return cmdMetadataLoad(ctx, rest[1:], stdout, stderr)
	case "config":
		if len(rest) == 0 || (rest[0] != "check" && rest[0] != "print" && rest[0] != "env") {
			return usageError{"usage: orderflow config check | print | env"}
		}
		return cmdConfig(rest[0], rest[1:], stdout, stderr)
	case "topology":
		return cmdTopology(rest, stdout, stderr)
	case "embedded":
		return cmdEmbedded(ctx, rest, stdout)
	case "bench":
		return cmdBench(ctx, rest, stdout, stderr)
	case "bench-relay": // the ceiling's relay, run by bench as a child process
		return cmdBenchRelay(ctx, rest)
	case "poison":
		if len(rest) == 0 || (rest[0] != "list" && rest[0] != "replay") {
			return usageError{"usage: orderflow poison list [--topic T] | replay (--filter F... | --all)"}
		}
		return cmdPoison(ctx, rest[0], rest[1:], stdout, stderr)
	default:
		return usageError{fmt.Sprintf("unknown command %q; run `orderflow help`", cmd)}
	}
}

// common holds the flags every command takes.
type common struct {
	config, brokers, mongoURI, logLevel, cpuProfile string
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet("orderflow "+name, flag.ContinueOnError)
	// The flag package's own output is a usage dump on every mistake; parse
	// reports one line instead, and --help prints the usage on stdout.
	fs.SetOutput(io.Discard)
	c := &common{}
	fs.StringVar(&c.config, "config", "", "configuration file")
	fs.StringVar(&c.brokers, "brokers", "", "Kafka brokers, comma-separated")
	fs.StringVar(&c.mongoURI, "mongodb-uri", "", "MongoDB connection string")
	fs.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn or error")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file")
	return fs, c
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return helpRequest{fs}
		}
		return usageError{fmt.Sprintf("%v (`%s --help` lists its flags)", err, fs.Name())}
	}
	return nil
}

// helpRequest is a command's --help: run prints its usage on stdout and
// succeeds.
type helpRequest struct{ fs *flag.FlagSet }

func (h helpRequest) Error() string { return "help requested" }

// connect loads the configuration and connects to its MongoDB, for the
// commands that only read or write there.
func (c *common) connect() (*config.Config, *mongoclient.Conn, error) {
	cfg, _, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return nil, nil, err
	}
	return cfg, m, nil
}

// load reads the configuration the flags point at, with the environment and
// then the flags on top.
func (c *common) load() (*config.Config, string, error) {
	path := c.config
	if path == "" {
		path = os.Getenv("ORDERFLOW_CONFIG")
	}
	data, name := defaultConfig, "orderflow.yaml (shipped)"
	if path == "" {
		if _, err := os.Stat("orderflow.yaml"); err == nil {
			path = "orderflow.yaml"
		}
	}
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, "", fmt.Errorf("read configuration: %w", err)
		}
		name = path
	}
	cfg, err := config.Load(data, name, config.OSEnv)
	if err != nil {
		return nil, "", err
	}
	if err := cfg.CheckEnviron(os.Environ()); err != nil {
		return nil, "", err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return nil, "", fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, "", fmt.Errorf("cpu profile: %w", err)
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if c.brokers != "" {
		cfg.Kafka.Brokers = strings.Split(c.brokers, ",")
	}
	if c.mongoURI != "" {
		cfg.MongoDB.URI = c.mongoURI
	}
	if c.logLevel != "" {
		cfg.Log.Level = c.logLevel
	}
	return cfg, name, nil
}

func logger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	text := cfg.Log.Format == "text"
	if cfg.Log.Format == "auto" {
		f, ok := stderr.(*os.File)
		text = ok && progress.IsTerminal(f)
	}
	if text {
		return slog.New(slog.NewTextHandler(stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(stderr, opts))
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && progress.IsTerminal(f)
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("demo", stderr)
	orders := fs.Int("orders", 2000, "orders to generate")
	rate := fs.Float64("rate", 0, "orders per second (0: as fast as possible)")
	data := fs.String("data", "data", "directory for the embedded servers' data")
	exit := fs.Bool("exit", false, "stop once every order is final")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, _, err := c.load()
	if err != nil {
		return err
	}
	if c.logLevel == "" && os.Getenv("ORDERFLOW_LOG_LEVEL") == "" {
		cfg.Log.Level = "warn" // the demo's own output tells the story
	}
	log := logger(cfg, stderr)
	slog.SetDefault(log)
	return demo.Run(ctx, cfg, demo.Options{
		Orders: *orders, Rate: *rate, DataDir: *data, Exit: *exit,
		Out: stdout, TTY: isTTY(stdout), Logger: log,
	})
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs, c := newFlags("run", stderr)
	only := fs.String("only", "", "run only these handlers, comma-separated")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, name, err := c.load()
	if err != nil {
		return err
	}
	log := logger(cfg, stderr)
	slog.SetDefault(log)
	log.Info("configuration loaded", "file", name)
	tuneGC(log)
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	if err := cfg.CheckOnly(names); err != nil {
		return err
	}
	p, err := app.NewPipeline(ctx, cfg, app.Options{Only: names, Logger: log})
	if err != nil {
		return err
	}
	return p.Run(ctx, nil)
}

func cmdGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("generate", stderr)
	orders := fs.Int("orders", 0, "orders to generate (required)")
	rate := fs.Float64("rate", 0, "orders per second (0: as fast as possible)")
	seed := fs.Uint64("seed", 0, "random seed (0: random)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *orders <= 0 {
		return usageError{"generate: --orders N is required"}
	}
	cfg, _, err := c.load()
	if err != nil {
		return err
	}
	log := logger(cfg, stderr)
	if cfg.Tracing.Enabled {
		stopTracing, err := tracing.Setup(ctx, tracing.Config{Exporter: cfg.Tracing.Exporter, Endpoint: cfg.Tracing.Endpoint, ServiceName: cfg.Tracing.ServiceName}, nil)
		if err != nil {
			return err
		}
		defer stopTracing(context.Background())
	}
	bar := progress.New(stdout, "generate", *orders, isTTY(stdout))
	res, err := generator.Generate(ctx, cfg, generator.Options{Orders: *orders, Rate: *rate, Seed: *seed, Logger: log, Progress: bar.Set})
	bar.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %d orders (%d lines), ids %d to %d, in %s\n", res.Orders, res.Lines, res.FirstID, res.LastID, res.Took.Round(1e6))
	return nil
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print JSON, with each order's lines and history")
	all := fs.Bool("all", false, "list every order (this folds the whole history, so it takes time at scale)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var ids []int64
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return usageError{fmt.Sprintf("status: %q is not an order id", a)}
		}
		ids = append(ids, id)
	}
	cfg, m, err := c.connect()
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	// A reader creates the indexes it reads by, whether or not a router ran.
	if err := status.EnsureIndexes(ctx, m.DB.Collection(status.Collection)); err != nil {
		fmt.Fprintln(stderr, "warning:", err)
	}
	// The current statuses and the counts come from the order_status view,
	// in time that does not grow with the history; the lines, the history
	// and the list of every order come from the records.
	reader := app.StatusReader(cfg, m.DB)
	current := app.CurrentStatusReader(cfg, m.DB)
	var orders []*status.Order
	var sum status.Summary
	switch {
	case len(ids) > 0 && (*asJSON || current == nil):
		orders, err = reader.Orders(ctx, ids...)
		sum = status.Summarize(orders)
	case len(ids) > 0:
		orders, err = current.Orders(ctx, ids...)
		sum = status.Summarize(orders)
	case *all || current == nil:
		orders, err = reader.All(ctx)
		sum = status.Summarize(orders)
	default:
		sum, err = current.Summary(ctx)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		var missing []int64
		for _, id := range ids {
			found := false
			for _, o := range orders {
				found = found || o.ID == id
			}
			if !found {
				missing = append(missing, id)
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Orders  []*status.Order `json:"orders"`
			Unknown []int64         `json:"unknown,omitempty"`
			Summary status.Summary  `json:"summary"`
		}{orders, missing, sum})
	}
	found := map[int64]bool{}
	for _, o := range orders {
		found[o.ID] = true
		line := fmt.Sprintf("order_id: %d status is %s", o.ID, o.Status)
		if o.Reason != "" {
			line += " (" + o.Reason + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	for _, id := range ids {
		if !found[id] {
			fmt.Fprintf(stdout, "order_id: %d is unknown\n", id)
		}
	}
	fmt.Fprintln(stdout)
	var rows []string
	for st, n := range sum.ByStatus {
		if n > 0 {
			rows = append(rows, fmt.Sprintf("%-10s %d", string(st)+":", n))
		}
	}
	sort.Strings(rows)
	for _, r := range rows {
		fmt.Fprintln(stdout, r)
	}
	fmt.Fprintf(stdout, "%-10s %d\n", "total:", sum.Orders)
	return nil
}

func cmdMetadataLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("metadata load", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	var ds metastore.Dataset
	var err error
	if fs.NArg() == 0 {
		ds, err = metastore.SampleDataset()
	} else {
		ds, err = metastore.ParseFiles(fs.Args()...)
	}
	if err != nil {
		return err // names the file and line; nothing was written
	}
	_, m, err := c.connect()
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	store := metastore.NewStore(m.DB)
	if err := store.EnsureIndexes(ctx); err != nil {
		fmt.Fprintln(stderr, "warning:", err)
	}
	res, err := store.Apply(ctx, ds)
	if err != nil {
		return err
	}
	for _, coll := range []string{metastore.FraudIPCollection, metastore.LocationCollection, metastore.ProductCollection} {
		if r := res[coll]; r != nil {
			fmt.Fprintf(stdout, "%-17s %5d new  %5d updated  %5d unchanged\n", coll, r.Inserted, r.Updated, r.Unchanged)
		}
	}
	return nil
}

func cmdConfig(what string, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("config "+what, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, name, err := c.load()
	if err != nil {
		return err
	}
	switch what {
	case "check":
		fmt.Fprintf(stdout, "%s: ok (%d handlers, %d topics)\n", name, len(cfg.Handlers), len(cfg.Topics))
		return nil
	case "env":
		_, err := fmt.Fprintln(stdout, strings.Join(cfg.EnvNames(), "\n"))
		return err
	}
	out, err := cfg.Masked()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

func cmdTopology(args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("topology", stderr)
	mermaid := fs.Bool("mermaid", false, "print a Mermaid flowchart")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, _, err := c.load()
	if err != nil {
		return err
	}
	top := cfg.Topology()
	if *mermaid {
		_, err = io.WriteString(stdout, top.Mermaid())
	} else {
		_, err = io.WriteString(stdout, top.String())
	}
	return err
}

func cmdEmbedded(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("orderflow embedded", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kafkaAddr := fs.String("kafka", "127.0.0.1:9092", "Kafka listen address; empty: no broker")
	mongoAddr := fs.String("mongo", "127.0.0.1:27017", "MongoDB listen address; empty: no server")
	data := fs.String("data", "data", "data directory")
	partitions := fs.Int("partitions", 8, "partitions of topics created automatically")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *kafkaAddr != "" {
		k, err := embedded.StartKafka(embedded.KafkaConfig{Addr: *kafkaAddr, DataDir: *data + "/kafka", Partitions: *partitions})
		if err != nil {
			return err
		}
		defer k.Close()
		fmt.Fprintf(stdout, "kafka %s\n", strings.Join(k.Brokers(), ","))
	}
	if *mongoAddr != "" {
		m, err := embedded.StartMongo(embedded.MongoConfig{Addr: *mongoAddr, DataDir: *data + "/mongo"})
		if err != nil {
			return err
		}
		defer m.Close()
		fmt.Fprintf(stdout, "mongodb %s\n", m.URI())
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	<-ctx.Done()
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdPoison(ctx context.Context, what string, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("poison "+what, stderr)
	topic := fs.String("topic", "", "poison topic (default: the configured poison queue)")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	var filters multiFlag
	fs.Var(&filters, "filter", "replay the entries matching FIELD=VALUE (handler, topic, group, kind, key, order, id, reason); repeat to narrow")
	all := fs.Bool("all", false, "replay every entry not replayed yet")
	force := fs.Bool("force", false, "replay entries that were replayed before")
	if err := parse(fs, args); err != nil {
		return err
	}
	filter, err := poison.ParseFilter(filters)
	if err != nil {
		return usageError{err.Error()}
	}
	if what == "replay" && len(filter) == 0 && !*all {
		return usageError{"poison replay: give --filter FIELD=VALUE or --all"}
	}
	cfg, _, err := c.load()
	if err != nil {
		return err
	}
	if *topic == "" {
		*topic = cfg.PoisonTopic()
	}
	k, err := kafkaclient.New(cfg.Kafka, false, logger(cfg, stderr))
	if err != nil {
		return err
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	store := &poison.Store{Brokers: k.Brokers(), Opts: k.ClientOptions(), Marks: m.DB.Collection(poison.ReplayCollection)}
	entries, err := store.List(ctx, *topic)
	if err != nil {
		return err
	}
	var selected []poison.Entry
	for _, e := range entries {
		if filter.Match(e) {
			selected = append(selected, e)
		}
	}
	if what == "list" {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(selected)
		}
		for _, e := range selected {
			replayed := ""
			if e.Replayed != nil {
				replayed = " [replayed " + e.Replayed.Format("2006-01-02 15:04:05") + "]"
			}
			fmt.Fprintf(stdout, "%s  order %s  from %s/%s@%s by %s (%s)  %s: %s%s\n",
				e.ID, e.Key, e.Topic, e.Partition, e.Offset, e.Handler, e.Group, e.Kind, e.Reason, replayed)
		}
		fmt.Fprintf(stdout, "%d entries in %s\n", len(selected), *topic)
		return nil
	}
	res, err := store.Replay(ctx, selected, *force)
	for _, e := range res.Excerpts {
		fmt.Fprintf(stdout, "not replayed: %s holds a %s-byte excerpt of a line of %s bytes; the line is in %s/%s@%s\n",
			e.ID, strconv.Itoa(len(e.Payload)), e.Metadata[middleware.SizeKey], e.Topic, e.Partition, e.Offset)
	}
	if *force || res.Skipped == 0 {
		fmt.Fprintf(stdout, "replayed %d\n", res.Replayed)
	} else {
		fmt.Fprintf(stdout, "replayed %d, skipped %d already replayed (use --force to replay them again)\n", res.Replayed, res.Skipped)
	}
	return err
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("bench", stderr)
	lines := fs.Int("lines", 100_000, "lines in the main run")
	small := fs.Int("small", -1, "lines of the run it is compared with for scaling (default 10000 when --lines is at least 100000; 0 skips)")
	half := fs.Int("half-rate-lines", 20_000, "lines of the run at half the maximum rate, for latency (0 skips)")
	baseLines := fs.Int("baseline-lines", 3_000, "most lines of the plain baseline run (0 skips)")
	baseTime := fs.Duration("baseline-time", time.Minute, "longest the plain baseline runs")
	partitions := fs.Int("partitions", 8, "partitions of every topic")
	readOrders := fs.Int("read-orders", 1_000_000, "orders to grow the order_status view to before timing its reads again (0: at the run's size only)")
	noView := fs.Int("no-view-lines", -1, "lines of the run without the order_status collection, to compare (default: as --lines; 0 skips)")
	jsonPath := fs.String("json", "", "also write the figures to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *noView < 0 {
		*noView = *lines
	}
	if *small < 0 {
		*small = 0
		if *lines >= 100_000 {
			*small = 10_000
		}
	}
	cfg, _, err := c.load()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	log := logger(cfg, stderr)
	res, err := bench.Run(ctx, bench.Options{
		Lines: *lines, SmallLines: *small, HalfRateLines: min(*half, *lines), BaselineLines: *baseLines, BaselineTime: *baseTime,
		NoViewLines: *noView, ReadOrders: *readOrders, Partitions: *partitions, Config: cfg, Exe: exe, Out: stdout, Logger: log,
	})
	if err != nil {
		return err
	}
	res.Print(stdout)
	if *jsonPath != "" {
		return res.WriteJSON(*jsonPath)
	}
	return nil
}

func cmdBenchRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orderflow bench-relay", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "brokers")
	topics := fs.String("topics", "", "topics, comma-separated, in hop order")
	group := fs.String("group", "", "consumer group prefix")
	if err := parse(fs, args); err != nil {
		return err
	}
	return bench.Relay(ctx, strings.Split(*brokers, ","), nil, strings.Split(*topics, ","), *group)
}

// tuneGC sets the garbage collector for a router process, unless GOGC or
// GOMEMLIMIT say otherwise: collect less often (GOGC 400: the live heap is
// small and many goroutines make each collection costly), but within a
// 192 MiB soft limit, so that memory stays bounded.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
	log.Debug("garbage collector", "memory_limit", debug.SetMemoryLimit(-1)) // -1 reads without changing
}
