package aggregate

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func orderPriceSpec() *Spec {
	return &Spec{Name: "order_price", GroupBy: "order_id", Complete: true, Lateness: 2 * time.Minute,
		Measures: []Measure{{Name: "total_amount", Op: config.OpSum, Field: "product_price", Decimals: 2, Max: 5000}, {Name: "lines", Op: config.OpCount}}}
}

func locationSpec() *Spec {
	return &Spec{Name: "location_product_count", GroupBy: "to_location", Carry: []string{"to_location_name"},
		EmitInterval: time.Second, Window: time.Minute, Lateness: 2 * time.Minute,
		Measures: []Measure{{Name: "total_product", Op: config.OpCount}}}
}

func line(orderID int64, index, count int, price float64, to int64, at time.Time) order.Line {
	return order.Line{OrderID: orderID, LineIndex: index, LineCount: count, ProductPrice: price, ToLocation: to,
		ToLocationName: "loc-" + strconv.FormatInt(to, 10), ProductID: 1000 + int64(index), Time: at.Format(order.TimeLayout)}
}

func mustApply(t *testing.T, p *Partition, l order.Line, want Verdict) {
	t.Helper()
	got, err := p.Apply(l)
	if err != nil {
		t.Fatalf("apply order %d line %d: %v", l.OrderID, l.LineIndex, err)
	}
	if got != want {
		t.Fatalf("apply order %d line %d: verdict %v, want %v", l.OrderID, l.LineIndex, got, want)
	}
}

func TestOrderIsEmittedOnceWhenEveryLineIsCountedAndCopiesAreNot(t *testing.T) {
	p := NewPartition(orderPriceSpec())
	mustApply(t, p, line(1, 0, 3, 10.7, 5, t0), Counted)
	if d := p.Take(); len(d.Finished) != 0 || len(d.Seen) != 1 {
		t.Fatalf("after one of three lines: %d finished, %d seen", len(d.Finished), len(d.Seen))
	}
	mustApply(t, p, line(1, 0, 3, 10.7, 5, t0), Duplicate)
	mustApply(t, p, line(1, 2, 3, 692.2, 5, t0), Counted)
	mustApply(t, p, line(1, 1, 3, 165.4, 5, t0), Counted)
	d := p.Take()
	if len(d.Finished) != 1 {
		t.Fatalf("finished %d groups, want the order once", len(d.Finished))
	}
	g := d.Finished[0]
	// 10.7 + 165.4 + 692.2 in floating point is 868.3000000000001.
	if g.Values[0] != 86830 || Units(g.Values[0], 2) != 868.3 || g.Values[1] != 3 || !g.Complete {
		t.Fatalf("order 1: %+v, want 86830 cents, 3 lines, complete", g)
	}
	mustApply(t, p, line(1, 1, 3, 165.4, 5, t0), Duplicate)
	if d := p.Take(); len(d.Finished) != 0 {
		t.Fatalf("a copy after completion finished the order again: %+v", d.Finished)
	}
}

func TestMeasureOutsideItsBoundIsRefusedAndNotCounted(t *testing.T) {
	spec := orderPriceSpec()
	p := NewPartition(spec)
	for _, price := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 5000.01} {
		_, err := p.Apply(line(2, 0, 1, price, 5, t0))
		if k, ok := failure.PermanentKind(err); !ok || k != failure.InvalidInput {
			t.Errorf("price %v: error %v, want invalid_input", price, err)
		}
	}
	if d := p.Take(); len(d.Seen) != 0 || len(d.Finished) != 0 {
		t.Fatalf("refused lines were counted: %+v", d)
	}
	mustApply(t, p, line(2, 0, 1, 5000, 5, t0), Counted)
}

func TestLateLineIsRefusedAndWindowsCloseAfterTheLateness(t *testing.T) {
	p := NewPartition(locationSpec())
	mustApply(t, p, line(1, 0, 1, 10, 7, t0.Add(10*time.Second)), Counted)
	mustApply(t, p, line(2, 0, 1, 10, 7, t0.Add(50*time.Second)), Counted)
	mustApply(t, p, line(3, 0, 1, 10, 8, t0.Add(70*time.Second)), Counted)
	// 3m10s: the window [10:00, 10:01) ends 2m10s behind, past the 2m lateness.
	mustApply(t, p, line(4, 0, 1, 10, 8, t0.Add(190*time.Second)), Counted)
	_, err := p.Apply(line(5, 0, 1, 10, 7, t0.Add(65*time.Second)))
	if !errors.Is(err, ErrLate) {
		t.Fatalf("a line 2m05s behind the newest: %v, want late", err)
	}
	if k, _ := failure.PermanentKind(err); k != failure.Late {
		t.Fatalf("late line's kind %q, want late", k)
	}
	p.Advance()
	d := p.Take()
	if len(d.Closed) != 1 || d.Closed[0].Key != "7" || d.Closed[0].Values[0] != 2 || d.Closed[0].Window != t0.UnixMicro() {
		t.Fatalf("closed windows %+v, want location 7's 10:00 window with 2 lines", d.Closed)
	}
	changed := p.Changed()
	if len(changed) != 2 || changed[0].Key != "7" || changed[0].Values[0] != 2 || changed[1].Values[0] != 2 ||
		changed[0].Carry["to_location_name"] != "loc-7" {
		t.Fatalf("changed groups %+v, want 7 and 8 with 2 lines each", changed)
	}
	if c := p.Changed(); len(c) != 0 {
		t.Fatalf("changed again without a line: %+v", c)
	}
}

func TestIncompleteOrderIsFinishedByTheWatermark(t *testing.T) {
	p := NewPartition(orderPriceSpec())
	mustApply(t, p, line(1, 0, 2, 10, 5, t0), Counted)
	mustApply(t, p, line(2, 0, 1, 20, 5, t0.Add(3*time.Minute)), Counted)
	p.Advance()
	d := p.Take()
	var incomplete *Group
	for i := range d.Finished {
		if d.Finished[i].Key == "1" {
			incomplete = &d.Finished[i]
		}
	}
	if incomplete == nil || incomplete.Complete || incomplete.Values[1] != 1 {
		t.Fatalf("finished %+v, want order 1 incomplete with 1 line", d.Finished)
	}
	if _, err := p.Apply(line(1, 1, 2, 10, 5, t0)); !errors.Is(err, ErrLate) {
		t.Fatalf("the closed order's missing line: %v, want late", err)
	}
}

func TestRestoreKnowsTheCountedLinesAndGoesOn(t *testing.T) {
	spec := locationSpec()
	p := NewPartition(spec)
	for i := range 10 {
		mustApply(t, p, line(int64(i), 0, 1, 10, int64(i%3), t0.Add(time.Duration(i)*time.Second)), Counted)
	}
	p.Advance()
	d := p.Take()
	snap := p.Snapshot()
	r := Restore(spec, snap, d.Seen)
	for i := range 10 {
		mustApply(t, r, line(int64(i), 0, 1, 10, int64(i%3), t0.Add(time.Duration(i)*time.Second)), Duplicate)
	}
	mustApply(t, r, line(10, 0, 1, 10, 0, t0.Add(10*time.Second)), Counted)
	total := int64(0)
	for _, g := range r.Changed() {
		total += g.Values[0]
	}
	if total != 11 {
		t.Fatalf("restored and one more: %d lines, want 11", total)
	}
	if roll := r.Rollup(); roll.Values[0] != 11 || roll.Groups != 3 || len(roll.Minutes) != 1 || roll.Minutes[0].Values[0] != 11 {
		t.Fatalf("rollup %+v, want 11 lines in 3 groups, one minute", roll)
	}
}

func TestResultFieldsAreTypedAndExact(t *testing.T) {
	spec := orderPriceSpec()
	g := Group{Key: "11100", Values: []int64{857830, 2}, Lines: []int64{1, 0}, LineCount: 2, Complete: true, Time: t0.UnixMicro()}
	b, err := RecordOf(spec, g).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"order_id":11100,"total_amount":8578.3,"total_amount_cents":857830,"lines":2,"complete":true,"line_ids":[0,1],"time":"2026-12-02T10:00:00.000000Z"}`
	if string(b) != want {
		t.Fatalf("record\n%s\nwant\n%s", b, want)
	}
}
