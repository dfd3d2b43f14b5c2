// Package faulttest is the fault suite: it runs the real orderflow binary as
// router processes against an embedded broker with persistence and an
// embedded MongoDB-wire server, breaks things (SIGKILL, SIGTERM, MongoDB and
// broker outages, a second router dying, a long soak), and checks that no
// line is lost and no status goes backwards.
//
// `go test ./faulttest` runs short versions of the SIGKILL, MongoDB outage
// and SIGTERM scenarios; `go test -tags fault ./faulttest` runs all six at
// full size. Set ORDERFLOW_FAULT_REPORT to a file to collect the figures.
package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/embedded"
	"github.com/orderflow/orderflow/generator"
	_ "github.com/orderflow/orderflow/handlers" // registers the processors the configuration names
	"github.com/orderflow/orderflow/internal/aggcheck"
	"github.com/orderflow/orderflow/internal/tcpproxy"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orderflow-fault-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "orderflow")
	build := exec.Command("go", "build", "-o", binary, "github.com/orderflow/orderflow")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build orderflow:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is a broker and a MongoDB-wire server in this process, each behind
// a TCP proxy the test controls. Routers reach them through the proxies; the
// generator and the checks use them directly.
type stack struct {
	t          *testing.T
	dir        string
	kafkaAddr  string
	kafka      *embedded.Kafka
	kafkaProxy *tcpproxy.Proxy
	mongo      *embedded.Mongo
	mongoProxy *tcpproxy.Proxy
	db         string
	cfg        *config.Config // direct addresses
	// guarantee is the routers' kafka.guarantee; empty is the shipped
	// one. With exactly_once, check fails on any duplicate line.
	guarantee string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, dir: testenv.TempDir(t), db: "fault_" + testenv.Unique()}
	port := freePort(t)
	s.kafkaAddr = "127.0.0.1:" + strconv.Itoa(port)
	var err error
	// The proxy forwards to the broker's port; the broker advertises the
	// proxy, so every connection a router makes goes through it.
	if s.kafkaProxy, err = tcpproxy.Start(s.kafkaAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kafkaProxy.Close)
	s.startKafka()
	s.mongo = testenv.StartMongo(t, filepath.Join(s.dir, "mongo"))
	if s.mongoProxy, err = tcpproxy.Start(s.mongo.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.mongoProxy.Close)

	data, err := os.ReadFile("../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg, err = config.Load(data, "orderflow.yaml", nil); err != nil {
		t.Fatal(err)
	}
	s.cfg.Kafka.Brokers = []string{s.kafkaProxy.Addr()}
	s.cfg.MongoDB.URI = "mongodb://" + s.mongo.Addr() + "/"
	s.cfg.MongoDB.Database = s.db
	ctx := testenv.Context(t, time.Minute)
	m := s.connect()
	defer m.Close(context.Background())
	ds, _ := metastore.SampleDataset()
	if _, err := metastore.NewStore(m.DB).Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	k, err := kafkaclient.New(s.cfg.Kafka, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.EnsureTopics(ctx, s.cfg.Topics); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) startKafka() {
	k, err := embedded.StartKafka(embedded.KafkaConfig{
		Addr: s.kafkaAddr, DataDir: filepath.Join(s.dir, "kafka"), Advertise: s.kafkaProxy.Addr(), Partitions: 8,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	s.kafka = k
	s.t.Cleanup(k.Close)
}

// restartKafka stops the broker and starts it again on its data dir.
func (s *stack) restartKafka(down time.Duration) {
	s.kafka.Close()
	time.Sleep(down)
	s.startKafka()
}

func (s *stack) connect() *mongoclient.Conn {
	m, err := mongoclient.Connect(s.cfg.MongoDB)
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// router is an orderflow run process.
type router struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	mu     sync.Mutex
	logs   strings.Builder
}

func (s *stack) startRouter(extraEnv ...string) *router {
	s.t.Helper()
	port := freePort(s.t)
	cmd := exec.Command(binary, "run", "--config", "../orderflow.yaml")
	cmd.Env = append(os.Environ(),
		"ORDERFLOW_KAFKA_BROKERS="+s.kafkaProxy.Addr(),
		"ORDERFLOW_MONGODB_URI=mongodb://"+s.mongoProxy.Addr()+"/",
		"ORDERFLOW_MONGODB_DATABASE="+s.db,
		"ORDERFLOW_MONGODB_TIMEOUT=2s",
		"ORDERFLOW_HTTP_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"ORDERFLOW_KAFKA_SESSION_TIMEOUT=6s",
		"ORDERFLOW_KAFKA_DRAIN_TIMEOUT=10s",
		"ORDERFLOW_DELIVERY_DELIVER_TIMEOUT=8s",
		"ORDERFLOW_STATUS_WRITE_TIMEOUT=3s",
		"ORDERFLOW_LOG_FORMAT=json",
		"ORDERFLOW_LOG_LEVEL=warn",
		"ORDERFLOW_DELIVERY_PARTNERS_PARTNER_ROUTE_2_SINK_PATH="+filepath.Join(s.dir, "out", "p2"),
		"ORDERFLOW_DELIVERY_PARTNERS_PARTNER_ROUTE_3_SINK_PATH="+filepath.Join(s.dir, "out", "p3"),
	)
	if s.guarantee != "" {
		cmd.Env = append(cmd.Env, "ORDERFLOW_KAFKA_GUARANTEE="+s.guarantee)
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	if v := os.Getenv("FAULT_ROUTER_LOG_LEVEL"); v != "" {
		cmd.Env = append(cmd.Env, "ORDERFLOW_LOG_LEVEL="+v)
	}
	r := &router{t: s.t, cmd: cmd, url: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{})}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			if r.logs.Len() < 16<<20 {
				r.logs.WriteString(sc.Text() + "\n")
			}
			r.mu.Unlock()
		}
		_ = cmd.Wait()
		close(r.exited)
	}()
	s.t.Cleanup(func() { r.kill() })
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(r.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case <-r.exited:
			s.t.Fatalf("router exited at start:\n%s", r.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.t.Fatalf("router not ready:\n%s", r.output())
	return nil
}

func (r *router) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// kill sends SIGKILL: no shutdown at all.
func (r *router) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// term sends SIGTERM and returns how long the process took to exit.
func (r *router) term(limit time.Duration) time.Duration {
	start := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return time.Since(start)
	case <-time.After(limit):
		r.t.Errorf("router still running %v after SIGTERM", limit)
		r.kill()
		return time.Since(start)
	}
}

// metric sums a metric's samples on the router's /metrics.
func (r *router) metric(name string) float64 {
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// generate publishes orders at rate orders/s in the background.
func (s *stack) generate(orders int, rate float64, seed uint64) <-chan generator.Result {
	out := make(chan generator.Result, 1)
	cfg := *s.cfg
	cfg.Kafka.Brokers = []string{s.kafkaAddr}
	go func() {
		res, err := generator.Generate(context.Background(), &cfg, generator.Options{
			Orders: orders, Rate: rate, Seed: seed, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			s.t.Errorf("generate: %v", err)
		}
		out <- res
	}()
	return out
}

// monitor polls the statuses of orders first to last and records any that
// moves backwards.
type monitor struct {
	stop       chan struct{}
	done       chan struct{}
	mu         sync.Mutex
	rank       map[int64]int
	violations []string
}

func rankOf(st status.Status) int {
	switch st {
	case status.Rejected, status.Failed:
		return 100
	case status.Pending:
		return 0
	}
	return st.Rank()
}

func (s *stack) watch(first, last int64) *monitor {
	m := &monitor{stop: make(chan struct{}), done: make(chan struct{}), rank: map[int64]int{}}
	mongo := s.connect()
	reader := status.NewReader(mongo.DB.Collection(status.Collection), true)
	go func() {
		defer close(m.done)
		defer mongo.Close(context.Background())
		for {
			start := time.Now()
			orders, err := reader.Range(context.Background(), first, last)
			took := time.Since(start)
			if err == nil {
				m.mu.Lock()
				for _, o := range orders {
					r := rankOf(o.Status)
					if r < m.rank[o.ID] {
						m.violations = append(m.violations, fmt.Sprintf("order %d went back to %s", o.ID, o.Status))
					}
					m.rank[o.ID] = max(r, m.rank[o.ID])
				}
				m.mu.Unlock()
			}
			// A fold of every record scans the whole collection on
			// FerretDB: pause twice as long as it took, so that the
			// watch never takes more than a third of the server from
			// the pipeline it watches.
			select {
			case <-m.stop:
				return
			case <-time.After(max(300*time.Millisecond, 2*took)):
			}
		}
	}()
	return m
}

func (m *monitor) finish() []string {
	close(m.stop)
	<-m.done
	return m.violations
}

// report is what a scenario found.
type report struct {
	Scenario   string
	Orders     int
	Lines      int
	Lost       int
	Duplicates int
	Failed     int
	NotFinal   int
	Backwards  int
	// ViewWrong counts orders whose order_status documents disagree with
	// the status derived from the records.
	ViewWrong int
	// ReadsWrong counts the disagreements of the fast status reads (one
	// order by _id, the summary counters, the stuck list) with the records.
	ReadsWrong int
	// AggregatesWrong counts the results of the aggregations that disagree
	// with a recount from the topics.
	AggregatesWrong int
	Figures         []string
}

// finalCount counts the final orders of generator runs.
func (s *stack) finalCount(res ...generator.Result) int {
	m := s.connect()
	defer m.Close(context.Background())
	first, last, _ := bounds(res)
	orders, err := status.NewReader(m.DB.Collection(status.Collection), true).Range(context.Background(), first, last)
	if err != nil {
		return 0
	}
	final := 0
	for _, o := range orders {
		if o.Final {
			final++
		}
	}
	return final
}

// waitFinal waits until every generated order is final, and returns how
// long that took.
func (s *stack) waitFinal(res []generator.Result, d time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	_, _, n := bounds(res)
	for {
		read := time.Now()
		if s.finalCount(res...) >= n {
			return time.Since(start)
		}
		if time.Since(start) > d {
			s.t.Errorf("orders not final after %v", d)
			return time.Since(start)
		}
		// As the watch: never more than a third of the server.
		time.Sleep(max(200*time.Millisecond, 2*time.Since(read)))
	}
}

func bounds(res []generator.Result) (first, last int64, orders int) {
	first = res[0].FirstID
	for _, r := range res {
		first, last = min(first, r.FirstID), max(last, r.LastID)
		orders += r.Orders
	}
	return first, last, orders
}

// check compares what reached the topics and the statuses with what was
// generated: every line of an order not rejected must be on its route's
// topic, at least once, and with exactly_once exactly once. The topics are
// read committed.
func (s *stack) check(name string, res []generator.Result, mon *monitor) report {
	s.t.Helper()
	if s.guarantee != "" {
		name += " (" + s.guarantee + ")"
	}
	first, last, n := bounds(res)
	rep := report{Scenario: name, Orders: n}
	// Every order is final by now: the watch has seen what it can, and
	// its reads would only slow the checks' own.
	var backwards []string
	if mon != nil {
		backwards = mon.finish()
	}
	brokers := []string{s.kafkaAddr}
	m := s.connect()
	defer m.Close(context.Background())
	snapCtx := testenv.Context(s.t, time.Minute)
	snap, err := metastore.NewStore(m.DB).Snapshot(snapCtx)
	if err != nil {
		s.t.Fatal(err)
	}
	read := time.Now()
	type key struct {
		o int64
		l int
	}
	generated := map[key]order.Line{}
	for _, r := range testenv.ReadTopic(s.t, brokers, "raw_order") {
		if l, err := order.DecodeLine(r.Value); err == nil && l.OrderID >= first && l.OrderID <= last {
			generated[key{l.OrderID, l.LineIndex}] = l
		}
	}
	rep.Lines = len(generated)
	seen := map[string]map[key]int{}
	for _, topic := range []string{"valid_orders", "enriched_order_details", "internal_routed_order", "external_routed_order"} {
		seen[topic] = map[key]int{}
		for _, r := range testenv.ReadTopic(s.t, brokers, topic) {
			if l, err := order.DecodeLine(r.Value); err == nil {
				seen[topic][key{l.OrderID, l.LineIndex}]++
			}
		}
	}
	for k, l := range generated {
		if snap.IsFraud(l.IPAddress) {
			continue
		}
		p, _ := snap.Product(l.ProductID)
		want := "external_routed_order"
		if p.RouteID == 1 {
			want = "internal_routed_order"
		}
		if seen[want][k] == 0 {
			rep.Lost++
		}
		for _, topic := range []string{"valid_orders", "enriched_order_details", want} {
			if c := seen[topic][k]; c > 1 {
				rep.Duplicates += c - 1
			}
		}
	}
	// Said now, so that a later read that fails does not hide them.
	s.t.Logf("%s: %d lines, %d lost, %d duplicate lines on the stage topics", name, rep.Lines, rep.Lost, rep.Duplicates)
	// order_price emits each order once, complete; a repeat is an emit
	// again after a crash before its checkpoint. The aggregations' emits
	// are outside the transactions in both modes (README, Exactly once).
	perOrder := map[string]int{}
	for _, r := range testenv.ReadTopic(s.t, brokers, "order_price") {
		perOrder[string(r.Key)]++
	}
	reemitted := 0
	for _, c := range perOrder {
		reemitted += c - 1
	}
	rep.Figures = append(rep.Figures, fmt.Sprintf("%d order_price results emitted again", reemitted))
	s.t.Logf("%s: the topics read in %v", name, time.Since(read).Round(time.Millisecond))
	// Its own budget: read committed, the topics' reads wait for open
	// transactions, which must not use up the time of the records' reads.
	reader := status.NewReader(m.DB.Collection(status.Collection), true)
	// Each read of the records has 3 minutes: full runs read 50,000 lines.
	// logDocs says how many documents coll holds: what a slow read scans.
	logDocs := func(coll string) {
		s.t.Helper()
		if docs, err := m.DB.Collection(coll).EstimatedDocumentCount(testenv.Context(s.t, time.Minute)); err == nil {
			s.t.Logf("%s: %d documents in %s", name, docs, coll)
		}
	}
	logDocs(status.Collection)
	rangeRead := time.Now()
	orders, err := reader.Range(testenv.Context(s.t, 3*time.Minute), first, last)
	if err != nil {
		dumpServers(s.t, "the records read failed after "+time.Since(rangeRead).Round(time.Second).String())
		s.t.Fatal(err)
	}
	s.t.Logf("%s: the records of %d orders read in %v", name, len(orders), time.Since(rangeRead).Round(time.Millisecond))
	for _, o := range orders {
		if !o.Final {
			rep.NotFinal++
		}
		if o.Status == status.Failed {
			rep.Failed++
		}
	}
	rep.NotFinal += n - len(orders)
	// The view is read whole: at 20,000 orders that is a scan of some
	// 100,000 documents on FerretDB, with the router still at work.
	wait, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	viewRead := time.Now()
	wrong, err := status.WaitView(wait, m.DB, orders)
	if err != nil {
		logDocs(status.ViewCollection)
		dumpServers(s.t, "the read of "+status.ViewCollection+" failed after "+time.Since(viewRead).Round(time.Second).String())
		s.t.Fatal(err)
	}
	rep.ViewWrong = len(wrong)
	rep.Figures = append(rep.Figures, fmt.Sprintf("order_status disagreed with the records for %d orders", rep.ViewWrong))
	for _, line := range wrong[:min(len(wrong), 5)] {
		s.t.Error("order_status: " + line)
	}
	// The fast reads: each order by _id, the counters (a killed writer's
	// are settled after 30 s, see status.ViewConfig.SettleAfter) and the
	// open orders, over every order in the database.
	everything, err := reader.All(testenv.Context(s.t, 3*time.Minute))
	if err != nil {
		s.t.Fatal(err)
	}
	readWait := testenv.Context(s.t, 90*time.Second)
	readsWrong, err := status.WaitReads(readWait, m.DB, everything, true)
	if err != nil {
		s.t.Fatal(err)
	}
	rep.ReadsWrong = len(readsWrong)
	rep.Figures = append(rep.Figures, fmt.Sprintf("the fast status reads disagreed with the records %d times", rep.ReadsWrong))
	for _, line := range readsWrong[:min(len(readsWrong), 5)] {
		s.t.Error("fast reads: " + line)
	}
	// The aggregations, against a recount that counts each line id once.
	aggWait := testenv.Context(s.t, 90*time.Second)
	agg := aggcheck.Wait(aggWait, s.t, brokers, m.DB)
	rep.AggregatesWrong = len(agg.Wrong)
	rep.Figures = append(rep.Figures, fmt.Sprintf("aggregates: %d of %d order totals and %d locations disagreed with the recount (%d copies on their inputs)",
		rep.AggregatesWrong, agg.Orders, agg.Locations, agg.Copies))
	for _, line := range agg.Wrong[:min(len(agg.Wrong), 5)] {
		s.t.Error("aggregates: " + line)
	}
	rep.Backwards = len(backwards)
	for _, line := range backwards[:min(len(backwards), 5)] {
		s.t.Error(line)
	}
	if s.guarantee == config.ExactlyOnce && rep.Duplicates != 0 {
		s.t.Errorf("%s: %d duplicate lines on the output topics, read committed", name, rep.Duplicates)
	}
	if rep.Lost != 0 || rep.NotFinal != 0 || rep.Backwards != 0 || rep.AggregatesWrong != 0 {
		s.t.Errorf("%s: %d lines lost, %d orders not final, %d went backwards, %d aggregates wrong", name, rep.Lost, rep.NotFinal, rep.Backwards, rep.AggregatesWrong)
	}
	return rep
}

// record logs a scenario's figures and appends them to the report file.
func record(t *testing.T, rep report) {
	t.Helper()
	line := fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %s |", rep.Scenario, rep.Orders, rep.Lines, rep.Lost, rep.Duplicates, rep.Failed, strings.Join(rep.Figures, "; "))
	t.Log(line)
	if path := os.Getenv("ORDERFLOW_FAULT_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// randomMoments returns n sorted random offsets within d.
func randomMoments(rng *rand.Rand, n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(rng.Int64N(int64(d)))
	}
	slices.Sort(out)
	return out
}
