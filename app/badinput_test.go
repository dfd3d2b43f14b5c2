package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/poison"
	"github.com/orderflow/orderflow/status"
)

func produce(t *testing.T, brokers []string, topic, key, uuid string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: value,
		Headers: []kgo.RecordHeader{{Key: kafkapubsub.UUIDHeader, Value: []byte(uuid)}}}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// goodLine is a valid single-line order on a sample product and locations.
func goodLine(id int64, product int64) order.Line {
	return order.Line{OrderID: id, Time: "2026-11-24T10:00:00.000000Z", IPAddress: "8.8.4.4", ProductID: product,
		OrderQty: 3, FromLocation: 1, ToLocation: 2, UnitOfMeasures: 4, UOMType: "M", ProductPrice: 120.5,
		LineIndex: 0, LineCount: 1, OrderProductIDs: []int64{product}}
}

// TestBadInputIsPoisonedWithItsOrigin sends every kind of bad input through
// a real broker, and checks each gets a clear outcome while the router keeps
// going; then it fixes the metadata and replays.
func TestBadInputIsPoisonedWithItsOrigin(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), nil)
	ctx := testenv.Context(t, 3*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	startPipeline(t, cfg)

	good := string(order.Encode(goodLine(900012, 1000)))
	mutate := func(old, new string) []byte {
		if !strings.Contains(good, old) {
			t.Fatalf("no %q in %s", old, good)
		}
		return []byte(strings.Replace(good, old, new, 1))
	}
	withID := func(b []byte, id int64) []byte {
		return []byte(strings.Replace(string(b), "900012", fmt.Sprint(id), -1))
	}
	cases := []struct {
		id      int64
		payload []byte
		handler string
		kind    string
		reason  string
	}{
		{900001, []byte(`{"order_id": 900001,`), "validate", "invalid_input", "malformed JSON"},
		{900002, nil, "validate", "invalid_input", "empty payload"},
		{900003, withID(mutate(`"ip_address":"8.8.4.4",`, ""), 900003), "validate", "invalid_input", "ip_address: missing required field"},
		{900004, withID(mutate(`"order_qty":3`, `"order_qty":"3"`), 900004), "validate", "invalid_input", "order_qty: expected a number, got a string"},
		{900005, withID(mutate(`"order_qty":3`, `"order_qty":-3`), 900005), "validate", "invalid_input", "order_qty: -3 is outside 1..10"},
		{900006, withID(mutate(`"product_price":120.5`, `"product_price":99999999`), 900006), "validate", "invalid_input", "product_price"},
		{900007, withID(mutate(`"8.8.4.4"`, `"999.1.1.1"`), 900007), "validate", "invalid_input", `"999.1.1.1" is not an IPv4 address`},
		{900008, withID(mutate(`"8.8.4.4"`, `{"$ne": null}`), 900008), "validate", "invalid_input", "ip_address: expected a string, got an object"},
		{900009, withID(mutate(`"product_id":1000`, `"product_id":777777`), 900009), "route", "unknown_reference", "unknown product_id 777777"},
		{900010, withID(mutate(`"from_location":1`, `"from_location":99999`), 900010), "enrich", "unknown_reference", "unknown from_location 99999"},
		{900011, []byte(`{"order_id":900011,"category":"` + strings.Repeat("x", 200<<10) + `"}`), "validate", "invalid_input", "exceeds the 16384-byte limit"},
	}
	// Fix the manifest of the unknown product line, so only the id is wrong.
	cases[8].payload = []byte(strings.Replace(string(cases[8].payload), `"order_product_ids":[1000]`, `"order_product_ids":[777777]`, 1))
	for _, c := range cases {
		produce(t, brokers, "raw_order", fmt.Sprint(c.id), fmt.Sprintf("bad-%d", c.id), c.payload)
	}
	produce(t, brokers, "raw_order", "not-a-number", "bad-key", []byte("garbage"))
	// The same good message, three times: at-least-once delivery.
	for range 3 {
		produce(t, brokers, "raw_order", "900012", "dup-900012", []byte(good))
	}

	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	reader := status.NewReader(m.DB.Collection(status.Collection), true)
	orders := waitFor(t, reader, 900001, 900012, 12)
	for _, c := range cases {
		o := orders[c.id]
		if o == nil || o.Status != status.Failed || !strings.Contains(o.Reason, c.reason) {
			t.Errorf("order %d: %+v, want failed because %q", c.id, o, c.reason)
		}
	}
	if o := orders[900012]; o.Status != status.Routed || o.Progress[0].Status != status.Routed {
		t.Errorf("duplicated good order: %+v", o)
	}
	if sum := status.Summarize([]*status.Order{orders[900012]}); sum.LinesByStage[status.Routed] != 1 || sum.LinesByStage[status.Validated] != 1 {
		t.Errorf("a line delivered three times counted as %v", sum.LinesByStage)
	}

	store := &poison.Store{Brokers: brokers, Marks: m.DB.Collection(poison.ReplayCollection)}
	var entries []poison.Entry
	deadline := time.Now().Add(30 * time.Second)
	for len(entries) < len(cases)+1 && time.Now().Before(deadline) {
		if entries, err = store.List(ctx, "poison_queue"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	byKey := map[string]poison.Entry{}
	for _, e := range entries {
		byKey[e.Key] = e
	}
	groups := map[string]string{"validate": "validate_group", "enrich": "enrich_group", "route": "route_group"}
	topics := map[string]string{"validate": "raw_order", "enrich": "valid_orders", "route": "enriched_order_details"}
	for _, c := range cases {
		e, ok := byKey[fmt.Sprint(c.id)]
		if !ok {
			t.Errorf("order %d not in the poison queue", c.id)
			continue
		}
		if e.Handler != c.handler || e.Group != groups[c.handler] || e.Topic != topics[c.handler] || e.Kind != c.kind ||
			!strings.Contains(e.Reason, c.reason) || e.Partition == "" || e.Offset == "" || e.Time == "" {
			t.Errorf("poison entry of %d: %+v", c.id, e)
		}
	}
	if e, ok := byKey["not-a-number"]; !ok || e.Kind != "invalid_input" {
		t.Errorf("garbage with a non-numeric key: %+v", e)
	}
	for _, r := range testenv.ReadTopic(t, brokers, "valid_orders") {
		if strings.Contains(string(r.Value), "$ne") {
			t.Fatalf("an operator reached valid_orders: %s", r.Value)
		}
	}

	// The cause is fixed: the missing product and location are loaded, and
	// the unknown references replayed, twice.
	ds, err := metastore.Parse("fix.json", strings.NewReader(`{"product_id":777777,"product_name":"late","route_id":1,"category":"Toys"}
{"location_id":99999,"name":"Late Depot"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metastore.NewStore(m.DB).Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	// Lookups refresh the metadata on a miss at most once a second
	// (metadata.miss_refresh_interval); the failures just did.
	time.Sleep(1100 * time.Millisecond)
	filter, _ := poison.ParseFilter([]string{"kind=unknown_reference"})
	var selected []poison.Entry
	for _, e := range entries {
		if filter.Match(e) {
			selected = append(selected, e)
		}
	}
	if len(selected) != 2 {
		t.Fatalf("filter selected %d entries", len(selected))
	}
	if res, err := store.Replay(ctx, selected, false); err != nil || res.Replayed != 2 {
		t.Fatalf("replay: %+v %v", res, err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		fixed, err := reader.Range(ctx, 900009, 900010)
		if err != nil {
			t.Fatal(err)
		}
		if len(fixed) == 2 && fixed[0].Status == status.Routed && fixed[1].Status == status.Routed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replayed orders: %+v %+v", fixed[0], fixed[1])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Replaying again is skipped, and even forced it changes no count.
	entries, _ = store.List(ctx, "poison_queue")
	selected = selected[:0]
	for _, e := range entries {
		if filter.Match(e) {
			selected = append(selected, e)
		}
	}
	if res, _ := store.Replay(ctx, selected, false); res.Replayed != 0 || res.Skipped != 2 {
		t.Fatalf("second replay: %+v", res)
	}
	if _, err := store.Replay(ctx, selected, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	again, _ := reader.Range(ctx, 900009, 900010)
	sum := status.Summarize(again)
	if sum.ByStatus[status.Routed] != 2 || sum.LinesByStage[status.Routed] != 2 {
		t.Fatalf("after a forced replay: %+v", sum)
	}
}

// waitFor waits until n orders from first to last are final.
func waitFor(t *testing.T, r *status.Reader, first, last int64, n int) map[int64]*status.Order {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		orders, err := r.Range(context.Background(), first, last)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]*status.Order{}
		for _, o := range orders {
			if o.Final {
				out[o.ID] = o
			}
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders final: %v", len(out), n, orders)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
