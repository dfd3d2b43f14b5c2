package app

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/poison"
	"github.com/orderflow/orderflow/status"
)

// TestConflictingCopyOfALineIsPoisoned sends, after a line, a copy of it
// written differently (same content) and a copy with another price under
// the same order id and line: the first goes on as a redelivery, the second
// is a conflict, poisoned with both positions, and the order keeps its
// status and its first line.
func TestConflictingCopyOfALineIsPoisoned(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), nil)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	startPipeline(t, cfg)
	_, m := connectSampled(t, cfg)
	reader := status.NewReader(m.DB.Collection(status.Collection), true)

	const id = 900101
	line := goodLine(id, 1000)
	produce(t, brokers, "raw_order", fmt.Sprint(id), "first", order.Encode(line))
	first := waitFor(t, reader, id, id, 1)[id]
	if first.Status != status.Routed {
		t.Fatalf("the first copy: %+v", first)
	}
	spaced, err := json.MarshalIndent(line, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "raw_order", fmt.Sprint(id), "spaced", spaced)
	changed := line
	changed.ProductPrice = 130.5
	produce(t, brokers, "raw_order", fmt.Sprint(id), "changed", order.Encode(changed))

	var raw []string // positions of the three copies, in order
	for _, r := range testenv.ReadTopic(t, brokers, "raw_order") {
		if string(r.Key) == fmt.Sprint(id) {
			raw = append(raw, fmt.Sprintf("raw_order/%d@%d", r.Partition, r.Offset))
		}
	}
	if len(raw) != 3 {
		t.Fatalf("raw_order holds %d copies", len(raw))
	}
	store := &poison.Store{Brokers: brokers}
	var mine []poison.Entry
	deadline := time.Now().Add(30 * time.Second)
	for len(mine) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		entries, err := store.List(ctx, "poison_queue")
		if err != nil {
			t.Fatal(err)
		}
		mine = mine[:0]
		for _, e := range entries {
			if e.Key == fmt.Sprint(id) {
				mine = append(mine, e)
			}
		}
	}
	// The spaced copy, read before the changed one, would be poisoned by
	// now if it were taken for a conflict.
	if len(mine) != 1 {
		t.Fatalf("poison entries of order %d: %+v", id, mine)
	}
	e := mine[0]
	copyAt := fmt.Sprintf("raw_order/%s@%s", e.Partition, e.Offset)
	if e.Kind != "conflict" || e.Handler != "validate" || copyAt != raw[2] || e.Metadata[middleware.FirstCopyKey] != raw[0] ||
		!strings.Contains(e.Reason, raw[0]) || !strings.Contains(e.Reason, raw[2]) || !strings.Contains(string(e.Payload), "130.5") {
		t.Fatalf("conflict entry %+v, want the copy at %s and the first at %s", e, raw[2], raw[0])
	}
	time.Sleep(time.Second) // the spaced copy's records, if any, are written
	after := waitFor(t, reader, id, id, 1)[id]
	if after.Status != status.Routed || after.Reason != "" || len(after.Progress) != 1 {
		t.Fatalf("after the conflict the order reads %+v", after)
	}
	for _, r := range testenv.ReadTopic(t, brokers, "valid_orders") {
		if l, err := order.DecodeLine(r.Value); err == nil && l.OrderID == id && l.ProductPrice != line.ProductPrice {
			t.Fatalf("the conflicting copy reached valid_orders: %s", r.Value)
		}
	}
}
