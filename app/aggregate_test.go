package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/aggcheck"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/middleware"
)

// TestAggregationsEqualARecountDespiteCopies runs the pipeline with both
// aggregations, then publishes again a third of the lines they read, as an
// upstream redelivery does. Every order total and every destination count
// must still equal a recount that counts each line once; without the
// aggregations' deduplication the copies would count twice.
func TestAggregationsEqualARecountDespiteCopies(t *testing.T) {
	lp := startLoaded(t, nil)
	res, err := generator.Generate(lp.ctx, lp.cfg, generator.Options{Orders: 300, Seed: 7, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	waitAllFinal(t, lp.cfg, res.FirstID, res.LastID, 300, time.Minute)
	for _, topic := range []string{"enriched_order_details", "internal_routed_order"} {
		republish(t, lp.brokers, topic, 3)
	}
	ctx, cancel := context.WithTimeout(lp.ctx, time.Minute)
	defer cancel()
	r := aggcheck.Wait(ctx, t, lp.brokers, lp.mongo.DB)
	if r.Copies < 100 {
		t.Fatalf("only %d copies on the input topics: the test would not test the deduplication", r.Copies)
	}
	if r.Orders < 250 || r.Locations < 50 {
		t.Fatalf("recounted %d orders and %d locations: too few", r.Orders, r.Locations)
	}
	for _, w := range r.Wrong[:min(len(r.Wrong), 10)] {
		t.Error(w)
	}
	if len(r.Wrong) > 0 {
		t.Fatalf("%d disagreements with the recount (%d copies on the topics)", len(r.Wrong), r.Copies)
	}
}

// republish publishes every nth record of a topic again, key and value.
func republish(t *testing.T, brokers []string, topic string, nth int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, r := range testenv.ReadTopic(t, brokers, topic) {
		if i%nth == 0 {
			recs = append(recs, &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("republish to %s: %v", topic, err)
	}
}

// TestAggregationPoisonsLinesItCannotCount publishes to the aggregations'
// input lines whose price is not a number, NaN, infinite or over the
// bound: each goes to the poison queue from order_price with its reason,
// and none is counted.
func TestAggregationPoisonsLinesItCannotCount(t *testing.T) {
	lp := startLoaded(t, nil)
	good := `"time":"2026-12-02T10:00:00.000000Z","ip_address":"10.0.0.1","product_id":1000,"order_qty":1,"from_location":1,"to_location":2,"unit_of_measures":1,"uom_type":"E","line_index":0,"line_count":1,"order_product_ids":[1000]`
	bad := map[string]string{
		"990000001": `{"order_id":990000001,` + good + `,"product_price":"12.5"}`,
		"990000002": `{"order_id":990000002,` + good + `,"product_price":NaN}`,
		"990000003": `{"order_id":990000003,` + good + `,"product_price":1e999}`,
		"990000004": `{"order_id":990000004,` + good + `,"product_price":5000.01}`,
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(lp.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for key, v := range bad {
		if err := cl.ProduceSync(lp.ctx, &kgo.Record{Topic: "enriched_order_details", Key: []byte(key), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		reasons := map[string]string{}
		for _, r := range testenv.ReadTopic(t, lp.brokers, "poison_queue") {
			var handler, reason string
			for _, h := range r.Headers {
				switch h.Key {
				case middleware.HandlerKey:
					handler = string(h.Value)
				case middleware.ReasonKey:
					reason = string(h.Value)
				}
			}
			if handler == "order_price" {
				reasons[string(r.Key)] = reason
			}
		}
		if len(reasons) == len(bad) {
			for key, reason := range reasons {
				if !strings.Contains(reason, "product_price") {
					t.Errorf("order %s poisoned for %q, which does not name product_price", key, reason)
				}
				if g, err := aggregate.NewReader(lp.mongo.DB, lp.cfg).Group(lp.ctx, "order_price", key); err != nil || g != nil {
					t.Errorf("order %s was counted: %v %v", key, g, err)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("poisoned by order_price: %v; want all of %d", reasons, len(bad))
		}
		time.Sleep(300 * time.Millisecond)
	}
}
