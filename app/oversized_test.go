package app

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/poison"
)

// TestOversizedLineLeavesItsPartition sends a 3 MB line, which the broker
// takes but no producer batch can carry, then a good line on the same
// partition: the big one is poisoned as an excerpt with its size and
// position, the good one goes on, and a replay refuses the excerpt.
func TestOversizedLineLeavesItsPartition(t *testing.T) {
	lp := startLoaded(t, nil)
	cfg, brokers, ctx, m := lp.cfg, lp.brokers, lp.ctx, lp.mongo
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(8<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	big := []byte(`{"order_id": 940001, "note": "` + strings.Repeat("x", 3<<20) + `"}`)
	good := order.Encode(goodLine(940002, 1000))
	for _, v := range [][]byte{big, good} {
		rec := &kgo.Record{Topic: "raw_order", Partition: 0, Key: []byte("940001"), Value: v,
			Headers: []kgo.RecordHeader{{Key: kafkapubsub.UUIDHeader, Value: []byte(testenv.Unique())}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce %d bytes: %v", len(v), err)
		}
	}
	reader := StatusReader(cfg, m.DB)
	got := waitFor(t, reader, 940002, 940002, 1)
	if got[940002].Status != "routed" && got[940002].Status != "delivered" {
		t.Fatalf("the line after the oversized one: %+v", got[940002])
	}
	store := &poison.Store{Brokers: brokers, Marks: m.DB.Collection(poison.ReplayCollection)}
	entries, err := store.List(ctx, "poison_queue")
	if err != nil {
		t.Fatal(err)
	}
	var e *poison.Entry
	for i := range entries {
		if entries[i].Key == "940001" {
			e = &entries[i]
		}
	}
	if e == nil || e.Metadata[middleware.SizeKey] != "3145760" || len(e.Payload) != middleware.ExcerptBytes ||
		e.Partition != "0" || e.Offset == "" || !strings.Contains(e.Reason, "exceeds") {
		t.Fatalf("poison entry of the oversized line: %+v", e)
	}
	res, err := store.Replay(ctx, []poison.Entry{*e}, true)
	if err != nil || res.Replayed != 0 || len(res.Excerpts) != 1 {
		t.Fatalf("replay of an excerpt: %+v %v", res, err)
	}
}
