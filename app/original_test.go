package app

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/status"
)

// TestOriginalProducersLinesAreProcessed publishes lines exactly as the
// original system's producer does (kafka-python's JSON serializer: no key, no
// headers, no line_index or line_count, a time without a zone) and checks
// that they are routed and delivered, not poisoned, with their statuses in
// order_status.
func TestOriginalProducersLinesAreProcessed(t *testing.T) {
	lp := startLoaded(t, func(c *config.Config) { c.Status.OpenOrderQuiet = config.D(time.Second) })
	cfg, brokers, ctx, m := lp.cfg, lp.brokers, lp.ctx, lp.mongo
	snap, err := metastore.NewStore(m.DB).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var internal, external []int64
	for _, id := range snap.Catalog().ProductIDs {
		if p, _ := snap.Product(id); p.RouteID == 1 {
			internal = append(internal, id)
		} else if p.Category == "Electronics" || p.RouteID == 2 {
			external = append(external, id)
		}
	}
	fraud := snap.Catalog().FraudIPs[0]
	// The original's flattened lines, as json.dumps writes them.
	line := func(order, product int64, ip string) []byte {
		return fmt.Appendf(nil, `{"product_id": %d, "order_qty": 1, "from_location": 49, "to_location": 98, "unit_of_measures": 5, "uom_type": "M", "product_price": 165.4, "order_id": %d, "time": "2026-11-25T03:12:45.449846", "ip_address": "%s"}`,
			product, order, ip)
	}
	orders := map[int64][][]byte{
		880001: {line(880001, internal[0], "10.1.2.3"), line(880001, internal[1], "10.1.2.3")},
		880002: {line(880002, internal[2], "10.1.2.4"), line(880002, external[0], "10.1.2.4")},
		880003: {line(880003, internal[3], fraud)},
		// Two equal lines are one line: the second counts as a redelivery.
		880004: {line(880004, internal[4], "10.1.2.5"), line(880004, internal[4], "10.1.2.5")},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, lines := range orders {
		for _, v := range lines {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "raw_order", Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	reader := StatusReader(cfg, m.DB)
	got := waitFor(t, reader, 880001, 880004, 4)
	want := map[int64]struct {
		st    status.Status
		lines int
	}{880001: {status.Routed, 2}, 880002: {status.Delivered, 2}, 880003: {status.Rejected, 1}, 880004: {status.Routed, 1}}
	var all []*status.Order
	for id, w := range want {
		o := got[id]
		if o == nil || o.Status != w.st || o.Lines != w.lines || !o.Open {
			t.Errorf("order %d: %+v, want %s with %d lines", id, o, w.st, w.lines)
			continue
		}
		all = append(all, o)
	}
	if poisoned := testenv.ReadTopic(t, brokers, "poison_queue"); len(poisoned) != 0 {
		t.Fatalf("%d original lines poisoned, the first: %s", len(poisoned), poisoned[0].Headers)
	}
	// Re-keyed by order id at the first stage: every later line has its key.
	for _, r := range testenv.ReadTopic(t, brokers, "valid_orders") {
		var l struct {
			OrderID int64 `json:"order_id"`
		}
		if err := json.Unmarshal(r.Value, &l); err != nil || string(r.Key) != fmt.Sprint(l.OrderID) {
			t.Errorf("valid_orders line keyed %q: %s", r.Key, r.Value)
		}
	}
	// The external line was delivered in a file of its own.
	var files []string
	for _, pc := range cfg.Delivery.Partners {
		matches, _ := filepath.Glob(filepath.Join(pc.Sink.Path, "880002-*.json"))
		files = append(files, matches...)
	}
	if len(files) != 1 {
		t.Errorf("delivery files of order 880002: %v", files)
	} else if data, err := os.ReadFile(files[0]); err != nil || !json.Valid(data) {
		t.Errorf("delivery file %s: %v", files[0], err)
	}
	slices.SortFunc(all, func(a, b *status.Order) int { return int(a.ID - b.ID) })
	checkOrderStatusView(t, ctx, m.DB, all, cfg.DeliveryEnabled())
}
