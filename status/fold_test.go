package status

import (
	"math/rand/v2"
	"testing"
	"time"
)

// derive folds records the way the reader does.
func derive(deliveryEnabled bool, recs ...Record) *Order {
	f := &fold{id: recs[0].OrderID, history: true}
	for _, d := range toDocs(recs, 1000, time.Now()) {
		bd := d.(*batchDoc)
		for i := range bd.Recs {
			f.add(bd, &bd.Recs[i])
		}
	}
	return f.order(deliveryEnabled)
}

func rec(line, lines int, st Status) Record {
	return Record{OrderID: 1, Line: line, Lines: lines, Status: st, Time: time.Unix(int64(100+st.Rank()), 0)}
}

func routed(line, lines int, route string) Record {
	r := rec(line, lines, Routed)
	r.Route = route
	return r
}

func failed(line, lines int, stage Status, why string) Record {
	r := rec(line, lines, Failed)
	r.Stage, r.Reason = stage, why
	return r
}

func TestOrderStatusDerivation(t *testing.T) {
	rejected := rec(0, 2, Rejected)
	rejected.Reason = "fraud ip"
	cases := []struct {
		name     string
		delivery bool
		recs     []Record
		want     Status
		final    bool
	}{
		{"one line generated", false, []Record{rec(0, 2, Generated)}, Pending, false},
		{"all generated", false, []Record{rec(0, 2, Generated), rec(1, 2, Generated)}, Generated, false},
		{"slowest line decides", false, []Record{rec(0, 2, Enriched), rec(1, 2, Validated)}, Validated, false},
		{"routed internal is final", true, []Record{routed(0, 2, "internal"), routed(1, 2, "internal")}, Routed, true},
		{"routed external waits for delivery", true, []Record{routed(0, 2, "internal"), routed(1, 2, "external")}, Routed, false},
		{"routed external without a delivery stage is final", false, []Record{routed(0, 1, "external")}, Routed, true},
		{"delivered external lines", true, []Record{routed(0, 2, "internal"), routed(1, 2, "external"), rec(1, 2, Delivered)}, Delivered, true},
		{"any rejected line rejects the order", false, []Record{rec(0, 2, Validated), rejected}, Rejected, true},
		{"failed line fails the order", false, []Record{rec(0, 2, Routed), failed(1, 2, Enriched, "unknown location 7")}, Failed, true},
		{"a replay that worked clears the failure", false, []Record{rec(0, 1, Validated), failed(0, 1, Enriched, "unknown location 7"), routed(0, 1, "internal")}, Routed, true},
		{"a late failure after success does not go back", false, []Record{routed(0, 1, "internal"), failed(0, 1, Enriched, "x")}, Routed, true},
		{"undecodable message fails its order", false, []Record{rec(0, 1, Generated), {OrderID: 1, Line: -1, Status: Failed, Stage: Validated, Reason: "malformed JSON"}}, Failed, true},
		{"a garbage message reusing a delivered order's id does not fail it", true, []Record{routed(0, 1, "external"), rec(0, 1, Delivered),
			{OrderID: 1, Line: -1, Status: Failed, Stage: Validated, Reason: "malformed JSON"}}, Delivered, true},
		{"nor a routed final one", false, []Record{routed(0, 1, "internal"), {OrderID: 1, Line: -1, Status: Failed, Stage: Validated, Reason: "malformed JSON"}}, Routed, true},
		{"a later stage without the earlier record", false, []Record{rec(0, 1, Generated), routed(0, 1, "internal")}, Routed, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := derive(tc.delivery, tc.recs...)
			if o.Status != tc.want || o.Final != tc.final {
				t.Fatalf("got %s final=%v, want %s final=%v (%+v)", o.Status, o.Final, tc.want, tc.final, o.Progress)
			}
		})
	}
}

func TestRejectedOrderKeepsReasonAndHistory(t *testing.T) {
	r := rec(0, 1, Rejected)
	r.Reason, r.Handler, r.Topic, r.Partition, r.Offset = "ip 1.2.3.4 is on the fraud list", "validate", "raw_order", 3, 42
	r.Time = time.Unix(200, 0)
	o := derive(false, rec(0, 1, Generated), r, r)
	if o.Reason != r.Reason || len(o.History) != 3 {
		t.Fatalf("order %+v", o)
	}
	last := o.History[2]
	if last.Handler != "validate" || last.Topic != "raw_order" || last.Partition != 3 || last.Offset != 42 || !last.Repeat {
		t.Fatalf("history %+v", o.History)
	}
}

// TestStatusNeverMovesBackwards replays random record streams, with
// duplicates and in random order, and checks after every record that the
// order's status never goes back and that the end result does not depend on
// the order of arrival.
func TestStatusNeverMovesBackwards(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	progress := func(s Status) int {
		switch s {
		case Rejected, Failed:
			return 100
		case Pending:
			return 0
		}
		return s.Rank()
	}
	for trial := 0; trial < 2000; trial++ {
		lines := 1 + rng.IntN(4)
		var all []Record
		for l := 0; l < lines; l++ {
			route := "internal"
			if rng.IntN(2) == 0 {
				route = "external"
			}
			for _, st := range []Status{Generated, Validated, Enriched} {
				all = append(all, rec(l, lines, st))
			}
			all = append(all, routed(l, lines, route))
			if route == "external" {
				all = append(all, rec(l, lines, Delivered))
			}
		}
		if rng.IntN(10) == 0 {
			r := rec(rng.IntN(lines), lines, Rejected)
			all = append(all, r)
		}
		// Redeliveries.
		for n := rng.IntN(5); n > 0; n-- {
			all = append(all, all[rng.IntN(len(all))])
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })

		f := &fold{id: 1}
		prev := 0
		for _, r := range all {
			d := toDocs([]Record{r}, 10, time.Now())[0].(*batchDoc)
			f.add(d, &d.Recs[0])
			p := progress(f.order(true).Status)
			if p < prev {
				t.Fatalf("trial %d: status went from %d to %d", trial, prev, p)
			}
			prev = p
		}
		final := f.order(true)
		again := derive(true, all...)
		if final.Status != again.Status || !final.Final {
			t.Fatalf("trial %d: final %s (final=%v) vs %s", trial, final.Status, final.Final, again.Status)
		}
	}
}

func TestSummaryCountsLinesOnce(t *testing.T) {
	a := derive(false, rec(0, 2, Generated), rec(0, 2, Generated), rec(1, 2, Generated), rec(0, 2, Validated), rec(0, 2, Validated))
	b := derive(false, routed(0, 1, "internal"))
	b.ID = 2
	s := Summarize([]*Order{a, b})
	if s.Orders != 2 || s.ByStatus[Generated] != 1 || s.ByStatus[Routed] != 1 {
		t.Fatalf("by status %v", s.ByStatus)
	}
	if s.LinesByStage[Generated] != 3 || s.LinesByStage[Validated] != 2 || s.LinesByStage[Routed] != 1 {
		t.Fatalf("lines by stage %v", s.LinesByStage)
	}
	if s.NotFinal != 1 {
		t.Fatalf("not final %d", s.NotFinal)
	}
}
