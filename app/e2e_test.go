package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/delivery"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

// testConfig is the shipped configuration pointed at the test's servers,
// with partner files under a temporary directory.
func testConfig(t *testing.T, brokers []string, mongoURI string, mod func(*config.Config)) *config.Config {
	t.Helper()
	data, err := os.ReadFile("../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(data, "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = brokers
	cfg.MongoDB.URI = mongoURI
	cfg.MongoDB.Database = "orderflow_" + testenv.Unique()
	cfg.Kafka.SessionTimeout = config.D(6 * time.Second)
	cfg.Kafka.DrainTimeout = config.D(5 * time.Second)
	cfg.Delivery.DeliverTimeout = config.D(4 * time.Second)
	cfg.HTTP.Listen = ""
	out := t.TempDir()
	for i := range cfg.Delivery.Partners {
		cfg.Delivery.Partners[i].Sink.Path = filepath.Join(out, cfg.Delivery.Partners[i].Name)
	}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loadSample loads the sample metadata into cfg's database.
func loadSample(ctx context.Context, cfg *config.Config, _ io.Writer) error {
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	_, err = metastore.LoadSample(ctx, m.DB)
	return err
}

// startPipeline runs a router process until the returned stop is called.
func startPipeline(t *testing.T, cfg *config.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := NewPipeline(ctx, cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, running) }()
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("pipeline stopped at start: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// loadedPipeline is a router running on the test's servers with the sample
// metadata loaded, and a MongoDB connection to read what it did.
type loadedPipeline struct {
	cfg     *config.Config
	brokers []string
	ctx     context.Context
	mongo   *mongoclient.Conn
}

// startLoaded starts a loadedPipeline; mod edits the configuration first.
func startLoaded(t *testing.T, mod func(*config.Config)) loadedPipeline {
	t.Helper()
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), mod)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	startPipeline(t, cfg)
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return loadedPipeline{cfg: cfg, brokers: brokers, ctx: ctx, mongo: m}
}

// waitAllFinal waits until every order from first to last is final.
func waitAllFinal(t *testing.T, cfg *config.Config, first, last int64, n int, d time.Duration) []*status.Order {
	t.Helper()
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	reader := status.NewReader(m.DB.Collection(status.Collection), cfg.DeliveryEnabled())
	deadline := time.Now().Add(d)
	for {
		orders, err := reader.Range(context.Background(), first, last)
		if err != nil {
			t.Fatal(err)
		}
		final := 0
		for _, o := range orders {
			if o.Final {
				final++
			}
		}
		if final == n {
			return orders
		}
		if time.Now().After(deadline) {
			var stuck []string
			for _, o := range orders {
				if !o.Final {
					stuck = append(stuck, fmt.Sprintf("%d:%s", o.ID, o.Status))
				}
			}
			t.Fatalf("%d of %d orders final after %v; not final: %v", final, n, d, stuck)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPipelineEndToEnd(t *testing.T) {
	for _, client := range []string{"franz", "watermill-kafka"} {
		t.Run(client, func(t *testing.T) { testEndToEnd(t, client) })
	}
}

// testEndToEnd sends orders through the whole pipeline, stopping and
// restarting the router mid-stream, and checks every line's path and every
// order's final status against the metadata.
func testEndToEnd(t *testing.T, client string) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) {
		c.Kafka.Client = client
		c.Generator.FraudShare = 0.1
		if client == "watermill-kafka" {
			// It holds one message per partition; see validateHandlers.
			f := false
			for i, h := range c.Handlers {
				if h.Processor == "deliver" || h.Processor == "aggregate" {
					c.Handlers[i].Enabled = &f
				}
			}
		}
	})
	delivering := client != "watermill-kafka"
	ctx := testenv.Context(t, 3*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	const batch = 150
	stop := startPipeline(t, cfg)
	a, err := generator.Generate(ctx, cfg, generator.Options{Orders: batch, Seed: 1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// The second batch is published at a steady rate while the router is
	// stopped and another one started: the restart falls mid-stream.
	genDone := make(chan struct{})
	var b generator.Result
	var genErr error
	go func() {
		defer close(genDone)
		b, genErr = generator.Generate(ctx, cfg, generator.Options{Orders: batch, Seed: 2, Rate: 300, Logger: quietLogger()})
	}()
	time.Sleep(250 * time.Millisecond)
	stop()
	startPipeline(t, cfg)
	<-genDone
	if genErr != nil {
		t.Fatal(genErr)
	}
	first, last := min(a.FirstID, b.FirstID), max(a.LastID, b.LastID)
	orders := waitAllFinal(t, cfg, first, last, 2*batch, 2*time.Minute)

	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	snap, err := metastore.NewStore(m.DB).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// What was generated.
	type lineKey struct {
		order int64
		line  int
	}
	generated := map[lineKey]order.Line{}
	linesOf := map[int64][]order.Line{}
	for _, r := range testenv.ReadTopic(t, brokers, "raw_order") {
		l, err := order.DecodeLine(r.Value)
		if err != nil {
			t.Fatalf("raw_order holds an invalid line: %v", err)
		}
		if l.OrderID < first || l.OrderID > last {
			continue
		}
		if string(r.Key) != l.Key() {
			t.Fatalf("line of order %d has key %q", l.OrderID, r.Key)
		}
		k := lineKey{l.OrderID, l.LineIndex}
		if _, dup := generated[k]; !dup {
			linesOf[l.OrderID] = append(linesOf[l.OrderID], l)
		}
		generated[k] = l
	}
	if len(linesOf) != 2*batch {
		t.Fatalf("raw_order has %d orders, want %d", len(linesOf), 2*batch)
	}

	// Where each line went.
	seen := map[string]map[lineKey]int{}
	for _, topic := range []string{"valid_orders", "internal_routed_order", "external_routed_order"} {
		seen[topic] = map[lineKey]int{}
		for _, r := range testenv.ReadTopic(t, brokers, topic) {
			l, err := order.DecodeLine(r.Value)
			if err != nil {
				t.Fatalf("%s holds an invalid line: %v", topic, err)
			}
			k := lineKey{l.OrderID, l.LineIndex}
			if _, ok := generated[k]; !ok {
				continue
			}
			seen[topic][k]++
			if topic == "valid_orders" {
				continue
			}
			from, _ := snap.LocationName(l.FromLocation)
			to, _ := snap.LocationName(l.ToLocation)
			p, _ := snap.Product(l.ProductID)
			if l.FromLocationName != from || l.ToLocationName != to || l.RouteID != p.RouteID || l.ProductName != p.ProductName {
				t.Errorf("%s line %+v: want locations %q, %q and product %+v", topic, l, from, to, p)
			}
		}
	}
	duplicates := 0
	for k, l := range generated {
		fraud := snap.IsFraud(l.IPAddress)
		p, _ := snap.Product(l.ProductID)
		want, other := "internal_routed_order", "external_routed_order"
		if p.RouteID != 1 {
			want, other = other, want
		}
		switch {
		case fraud && seen["valid_orders"][k] > 0:
			t.Errorf("fraud line %v reached valid_orders", k)
		case fraud:
		case seen[want][k] == 0:
			t.Errorf("line %v (route %d) missing from %s", k, p.RouteID, want)
		case seen[other][k] > 0:
			t.Errorf("line %v (route %d) also published to %s", k, p.RouteID, other)
		}
		for _, topic := range []string{"valid_orders", want} {
			if n := seen[topic][k]; n > 1 {
				duplicates += n - 1
			}
		}
	}
	t.Logf("%d lines, %d duplicate deliveries across the restart", len(generated), duplicates)

	// Final statuses.
	rejected := 0
	for _, o := range orders {
		lines := linesOf[o.ID]
		external := slices.ContainsFunc(lines, func(l order.Line) bool { p, _ := snap.Product(l.ProductID); return p.RouteID != 1 })
		want := status.Routed
		switch {
		case snap.IsFraud(lines[0].IPAddress):
			want = status.Rejected
			rejected++
		case external && delivering:
			want = status.Delivered
		}
		if o.Status != want || o.Lines != len(lines) || len(o.Progress) != len(lines) {
			t.Errorf("order %d: %s with %d lines, want %s with %d (%s)", o.ID, o.Status, o.Lines, want, len(lines), o.Reason)
		}
		if want == status.Delivered {
			checkDeliveryFiles(t, cfg, lines, snap)
		}
	}
	if rejected == 0 || rejected == len(orders) {
		t.Fatalf("%d of %d orders rejected: the fraud share did not show", rejected, len(orders))
	}
	sum := status.Summarize(orders)
	if sum.NotFinal != 0 || sum.ByStatus[status.Rejected] != rejected {
		t.Errorf("summary %+v", sum)
	}
	checkOrderStatusView(t, ctx, m.DB, orders, cfg.DeliveryEnabled())
}

// checkOrderStatusView reads order_status as the original system's users do,
// with plain queries, and checks it against the statuses from the records.
func checkOrderStatusView(t *testing.T, ctx context.Context, db *mongo.Database, orders []*status.Order, deliveryEnabled bool) {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wrong, err := status.WaitView(wait, db, orders)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrong[:min(len(wrong), 10)] {
		t.Error("order_status: " + w)
	}
	// The fast reads (one order by _id, the counters, the open orders)
	// agree with the records too.
	wrong, err = status.WaitReads(wait, db, orders, deliveryEnabled)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrong[:min(len(wrong), 10)] {
		t.Error("fast reads: " + w)
	}
	// find({"order_id": N}) prints the order's statuses, the current last.
	for _, want := range []status.Status{status.Rejected, status.Delivered, status.Routed} {
		i := slices.IndexFunc(orders, func(o *status.Order) bool { return o.Status == want })
		if i < 0 {
			continue
		}
		cur, err := db.Collection("order_status").Find(ctx, bson.D{{Key: "order_id", Value: orders[i].ID}})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		if len(docs) < 2 || docs[0]["status"] != "generated" || docs[len(docs)-1]["status"] != string(want) {
			t.Errorf("find({order_id: %d}) printed %v, want generated first and %s last", orders[i].ID, docs, want)
		}
	}
	// find({"status": "rejected"}) lists the rejected orders with reasons.
	cur, err := db.Collection("order_status").Find(ctx, bson.D{{Key: "status", Value: "rejected"}})
	if err != nil {
		t.Fatal(err)
	}
	var rejected []bson.M
	if err := cur.All(ctx, &rejected); err != nil {
		t.Fatal(err)
	}
	want := status.Summarize(orders).ByStatus[status.Rejected]
	if len(rejected) != want {
		t.Errorf("find({status: rejected}) gave %d documents, %d orders are rejected", len(rejected), want)
	}
	for _, d := range rejected {
		if r, _ := d["reason"].(string); !strings.Contains(r, "fraud list") {
			t.Errorf("rejected document without its reason: %v", d)
		}
	}
}

// checkDeliveryFiles checks that each partner holds a file for the order with
// exactly its lines.
func checkDeliveryFiles(t *testing.T, cfg *config.Config, lines []order.Line, snap *metastore.Snapshot) {
	t.Helper()
	byPartner := map[string][]int{}
	for _, l := range lines {
		p, _ := snap.Product(l.ProductID)
		for _, pc := range cfg.Delivery.Partners {
			if slices.Contains(pc.Match.RouteIDs, p.RouteID) {
				byPartner[pc.Sink.Path] = append(byPartner[pc.Sink.Path], l.LineIndex)
				break
			}
		}
	}
	for dir, want := range byPartner {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.json", lines[0].OrderID)))
		if err != nil {
			t.Errorf("order %d: %v", lines[0].OrderID, err)
			continue
		}
		var doc delivery.Document
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Errorf("order %d: %v", lines[0].OrderID, err)
			continue
		}
		var got []int
		for _, l := range doc.Lines {
			got = append(got, l.LineIndex)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) || doc.Partial != (len(want) < len(lines)) || (doc.Partial && !strings.Contains(doc.Note, "of the order's")) {
			t.Errorf("order %d in %s: lines %v partial %v note %q, want lines %v", doc.OrderID, dir, got, doc.Partial, doc.Note, want)
		}
	}
}
