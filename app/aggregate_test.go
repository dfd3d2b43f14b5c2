package app

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/aggcheck"
	"github.com/orderflow/orderflow/internal/testenv"
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
