package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/delivery"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/poison"
	"github.com/orderflow/orderflow/status"
)

// partnerServer records what a partner's endpoint receives and answers with
// reply(n), n counting the requests for the same idempotency key from 1.
type partnerServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string][]delivery.Document
}

func newPartner(t *testing.T, reply func(w http.ResponseWriter, n int)) *partnerServer {
	p := &partnerServer{requests: map[string][]delivery.Document{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery.Document
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			t.Errorf("partner got a body that is not a document: %v", err)
		}
		key := r.Header.Get("Idempotency-Key")
		if key != d.IdempotencyKey || key != delivery.IdempotencyKey(d.OrderID, d.Partner) {
			t.Errorf("idempotency header %q for document key %q", key, d.IdempotencyKey)
		}
		p.mu.Lock()
		p.requests[key] = append(p.requests[key], d)
		n := len(p.requests[key])
		p.mu.Unlock()
		reply(w, n)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *partnerServer) received() map[string][]delivery.Document {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]delivery.Document{}
	for k, v := range p.requests {
		out[k] = append([]delivery.Document(nil), v...)
	}
	return out
}

// publishTestOrders publishes handmade orders the way the generator does.
func publishTestOrders(t *testing.T, cfg *config.Config, orders []order.Order, pace time.Duration) {
	t.Helper()
	k, err := kafkaclient.New(cfg.Kafka, false, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	rec, err := status.NewRecorder(m.DB.Collection(status.Collection), status.RecorderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	kpub, err := k.NewPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer kpub.Close()
	pub := &status.Publisher{Next: kpub, Writer: rec, Status: status.Generated}
	for _, o := range orders {
		if err := generator.PublishOrders(pub, "raw_order", []order.Order{o}); err != nil {
			t.Error(err)
		}
		time.Sleep(pace)
	}
}

func makeOrder(id int64, products ...int64) order.Order {
	o := order.Order{ID: id, Time: "2026-11-24T10:00:00.000000Z", IPAddress: "8.8.8.8"}
	for _, p := range products {
		o.Products = append(o.Products, order.Product{ProductID: p, OrderQty: 1, FromLocation: 1, ToLocation: 2,
			UnitOfMeasures: 1, UOMType: "E", ProductPrice: 10})
	}
	return o
}

// TestPartnerDelivery runs the delivery stage against real HTTP servers on
// loopback, answering 200; 500 twice then 200; 400; and not at all; and a
// directory partner, across a router restart.
func TestPartnerDelivery(t *testing.T) {
	ok := newPartner(t, func(http.ResponseWriter, int) {})
	flaky := newPartner(t, func(w http.ResponseWriter, n int) {
		if n <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
		}
	})
	bad := newPartner(t, func(w http.ResponseWriter, _ int) { http.Error(w, "unknown sku", http.StatusBadRequest) })
	hangDone := make(chan struct{})
	hang := newPartner(t, func(http.ResponseWriter, int) { <-hangDone })
	defer close(hangDone)

	brokers, _ := testenv.Brokers(t)
	files := filepath.Join(t.TempDir(), "files")
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) {
		httpSink := func(url string) config.SinkConfig {
			return config.SinkConfig{Type: "http", URL: url, Timeout: config.D(300 * time.Millisecond), MaxRetries: 2,
				InitialInterval: config.D(20 * time.Millisecond), MaxInterval: config.D(50 * time.Millisecond)}
		}
		c.Delivery.AssemblyTimeout = config.D(20 * time.Second)
		c.Delivery.Partners = []config.PartnerConfig{
			{Name: "ok", Match: config.MatchConfig{RouteIDs: []int{2}}, Sink: httpSink(ok.URL)},
			{Name: "flaky", Match: config.MatchConfig{RouteIDs: []int{3}}, Sink: httpSink(flaky.URL)},
			{Name: "bad", Match: config.MatchConfig{RouteIDs: []int{4}}, Sink: httpSink(bad.URL)},
			{Name: "hang", Match: config.MatchConfig{Categories: []string{"Slow"}}, Sink: httpSink(hang.URL)},
			{Name: "files", Match: config.MatchConfig{RouteIDs: []int{6}}, Sink: config.SinkConfig{Type: "dir", Path: files}},
		}
	})
	ctx, m := connectSampled(t, cfg)
	ds, err := metastore.Parse("partners.json", strings.NewReader(`{"product_id":1,"product_name":"inside","route_id":1,"category":"Home"}
{"product_id":2,"product_name":"to-ok","route_id":2,"category":"Home"}
{"product_id":3,"product_name":"to-flaky","route_id":3,"category":"Home"}
{"product_id":4,"product_name":"to-bad","route_id":4,"category":"Home"}
{"product_id":5,"product_name":"to-hang","route_id":5,"category":"Slow"}
{"product_id":6,"product_name":"to-files","route_id":6,"category":"Home"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metastore.NewStore(m.DB).Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}

	var orders []order.Order
	id := int64(800000)
	add := func(n int, products ...int64) []int64 {
		var ids []int64
		for range n {
			id++
			orders = append(orders, makeOrder(id, products...))
			ids = append(ids, id)
		}
		return ids
	}
	okIDs := add(4, 1, 2)  // split: one internal line, one to ok
	flakyIDs := add(3, 3)  // 500, 500, 200
	badIDs := add(2, 4, 2) // 400 from bad; its ok line is delivered
	hangIDs := add(2, 5)   // no answer

	reader := status.NewReader(m.DB.Collection(status.Collection), true)
	stop := startPipeline(t, cfg)
	publishTestOrders(t, cfg, orders, 0)
	final := waitFor(t, reader, 800001, id, len(orders))
	stop()

	// The directory partner's orders go through a router restart.
	fileIDs := add(40, 6, 1, 6) // two lines to files, one internal
	stop = startPipeline(t, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishTestOrders(t, cfg, orders[len(orders)-len(fileIDs):], 10*time.Millisecond)
	}()
	time.Sleep(200 * time.Millisecond)
	stop() // mid-stream
	startPipeline(t, cfg)
	<-done
	for oid, o := range waitFor(t, reader, fileIDs[0], id, len(fileIDs)) {
		final[oid] = o
	}

	for _, oid := range okIDs {
		docs := ok.received()[delivery.IdempotencyKey(oid, "ok")]
		if len(docs) == 0 || len(docs[0].Lines) != 1 || docs[0].Lines[0].LineIndex != 1 || !docs[0].Partial ||
			!strings.Contains(docs[0].Note, "line 0 routed internally") {
			t.Errorf("ok partner got %+v for order %d", docs, oid)
		}
		checkDelivered(t, reader, oid, "ok", "HTTP 200")
	}
	for _, oid := range flakyIDs {
		if n := len(flaky.received()[delivery.IdempotencyKey(oid, "flaky")]); n != 3 {
			t.Errorf("flaky partner got %d requests for order %d, want 500, 500, 200", n, oid)
		}
		checkDelivered(t, reader, oid, "flaky", "HTTP 200")
	}
	for _, oid := range badIDs {
		if n := len(bad.received()[delivery.IdempotencyKey(oid, "bad")]); n != 1 {
			t.Errorf("bad partner got %d requests for order %d: a 4xx must not be retried", n, oid)
		}
		o := final[oid]
		if o.Status != status.Failed || !strings.Contains(o.Reason, "400 Bad Request: unknown sku") {
			t.Errorf("order %d: %s %q", oid, o.Status, o.Reason)
		}
		if len(ok.received()[delivery.IdempotencyKey(oid, "ok")]) != 1 {
			t.Errorf("order %d: its line for the ok partner was not delivered", oid)
		}
	}
	for _, oid := range hangIDs {
		if n := len(hang.received()[delivery.IdempotencyKey(oid, "hang")]); n != 3 {
			t.Errorf("hanging partner got %d requests for order %d, want 3 (two retries)", n, oid)
		}
		o := final[oid]
		if o.Status != status.Failed || !strings.Contains(o.Reason, "no answer within 300ms") {
			t.Errorf("order %d: %s %q", oid, o.Status, o.Reason)
		}
	}
	for _, oid := range fileIDs {
		checkDelivered(t, reader, oid, "files", filepath.Join(files, fmt.Sprintf("%d.json", oid)))
	}
	entries, _ := os.ReadDir(files)
	if len(entries) != len(fileIDs) {
		t.Errorf("%d entries in the partner directory for %d orders (temporary files left?)", len(entries), len(fileIDs))
	}

	// The poison queue holds the refused and the unanswered lines.
	store := &poison.Store{Brokers: brokers}
	list, err := store.List(ctx, "poison_queue")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, e := range list {
		if e.Handler == "deliver" {
			kinds[e.Key] = e.Kind
		}
	}
	for _, oid := range badIDs {
		if kinds[fmt.Sprint(oid)] != "partner_rejected" {
			t.Errorf("order %d in the poison queue as %q", oid, kinds[fmt.Sprint(oid)])
		}
	}
	for _, oid := range hangIDs {
		if kinds[fmt.Sprint(oid)] != "transient" {
			t.Errorf("order %d in the poison queue as %q", oid, kinds[fmt.Sprint(oid)])
		}
	}
}

// connectSampled loads the sample metadata into cfg's database and connects
// to it, for three minutes of test.
func connectSampled(t *testing.T, cfg *config.Config) (context.Context, *mongoclient.Conn) {
	t.Helper()
	ctx := testenv.Context(t, 3*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return ctx, m
}

// checkDelivered checks an order is delivered, with the partner and its
// confirmation in its history, and each external line delivered exactly
// once.
func checkDelivered(t *testing.T, reader *status.Reader, id int64, partner, detail string) {
	t.Helper()
	orders, err := reader.Orders(context.Background(), id)
	if err != nil || len(orders) != 1 {
		t.Fatalf("order %d: %v", id, err)
	}
	o := orders[0]
	if o.Status != status.Delivered {
		t.Errorf("order %d: %s (%s), want delivered", id, o.Status, o.Reason)
		return
	}
	delivered := map[int]int{}
	for _, ev := range o.History {
		if ev.Status != status.Delivered || ev.Partner != partner {
			continue
		}
		switch ev.Detail {
		case detail:
			delivered[ev.Line]++
		case detail + " (already there)":
			// A redelivery after the restart found the file written.
		default:
			t.Errorf("order %d line %d delivered with %q, want %q", id, ev.Line, ev.Detail, detail)
		}
	}
	for _, l := range o.Progress {
		if l.Route == order.RouteExternal && delivered[l.Line] != 1 {
			t.Errorf("order %d line %d delivered %d times", id, l.Line, delivered[l.Line])
		}
	}
}

// TestRebalanceDuringDeliveryDeliversOnce starts a second delivery router
// while the first holds lines waiting for their orders' other lines (held
// up in enrich by a location not known yet) and delivers others to a slow
// partner. The waiting lines give their partitions up at once, the
// deliveries under way finish before their partitions move, and the new
// owner skips what the old one acked: every order is delivered, each
// exactly once, and nothing is poisoned.
func TestRebalanceDuringDeliveryDeliversOnce(t *testing.T) {
	slow := newPartner(t, func(http.ResponseWriter, int) { time.Sleep(400 * time.Millisecond) })
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) {
		c.Delivery.AssemblyTimeout = config.D(30 * time.Second)
		c.Delivery.Partners = []config.PartnerConfig{{Name: "slow", Match: config.MatchConfig{RouteIDs: []int{2}},
			Sink: config.SinkConfig{Type: "http", URL: slow.URL, Timeout: config.D(2 * time.Second)}}}
	})
	ctx, m := connectSampled(t, cfg)
	metadata := func(lines string) {
		t.Helper()
		ds, err := metastore.Parse("metadata.json", strings.NewReader(lines))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := metastore.NewStore(m.DB).Apply(ctx, ds); err != nil {
			t.Fatal(err)
		}
	}
	metadata(`{"product_id":2,"product_name":"to-slow","route_id":2,"category":"Home"}`)

	var late, steady []order.Order
	for i := range int64(16) {
		o := makeOrder(810001+i, 2, 2)
		o.Products[1].ToLocation = 9901 // line 1 waits in enrich for location 9901
		late = append(late, o)
	}
	for i := range int64(40) {
		steady = append(steady, makeOrder(810101+i, 2, 2))
	}
	reader := status.NewReader(m.DB.Collection(status.Collection), true)
	startPipeline(t, cfg)
	publishTestOrders(t, cfg, late, 0)
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishTestOrders(t, cfg, steady, 50*time.Millisecond)
	}()

	time.Sleep(time.Second)
	bctx, cancel := context.WithCancel(context.Background())
	b, err := NewPipeline(bctx, cfg, Options{Logger: quietLogger(), Only: []string{"deliver"}})
	if err != nil {
		t.Fatal(err)
	}
	running, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- b.Run(bctx, running) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second router: %v", err)
		}
	}()
	<-running
	time.Sleep(2 * time.Second) // the rebalance
	metadata(`{"location_id":9901,"name":"Late Depot"}`)
	<-published

	final := waitFor(t, reader, 810001, 810140, len(late)+len(steady))
	got := slow.received()
	for _, o := range append(late, steady...) {
		if f := final[o.ID]; f == nil || f.Status != status.Delivered {
			t.Errorf("order %d: %+v, want delivered", o.ID, f)
		}
		if n := len(got[delivery.IdempotencyKey(o.ID, "slow")]); n != 1 {
			t.Errorf("order %d delivered %d times", o.ID, n)
		}
	}
	list, err := (&poison.Store{Brokers: brokers}).List(ctx, "poison_queue")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		t.Errorf("poisoned: order %s by %s: %s", e.Key, e.Handler, e.Reason)
	}
}
