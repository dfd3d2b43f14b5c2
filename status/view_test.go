package status

import (
	"slices"
	"testing"
	"time"
)

// statuses lists the statuses of a batch's documents, in insertion order.
func statuses(ts []transition) []string {
	var out []string
	for _, t := range ts {
		for _, d := range t.docs {
			out = append(out, d.ID)
		}
	}
	return out
}

func TestViewTransitions(t *testing.T) {
	v := newView(nil, ViewConfig{}) // transitions alone: no MongoDB
	now := time.Now()
	step := func(recs ...Record) []string {
		ts := v.transitions(recs, now)
		v.commit(ts)
		return statuses(ts)
	}
	// An order's stage is reached when all its lines passed it; the stages
	// before it come first.
	if got := step(rec(0, 2, Validated)); len(got) != 0 {
		t.Fatalf("one of two lines validated: %v", got)
	}
	if got := step(rec(1, 2, Validated)); !slices.Equal(got, []string{"1-generated", "1-validated"}) {
		t.Fatalf("both lines validated: %v", got)
	}
	// Several stages in one batch cost one chain; what was inserted is not
	// inserted again.
	if got := step(rec(0, 2, Enriched), rec(1, 2, Enriched), routed(0, 2, "internal"), routed(1, 2, "internal")); !slices.Equal(got, []string{"1-enriched", "1-routed"}) {
		t.Fatalf("enriched and routed in one batch: %v", got)
	}
	if got := step(rec(0, 2, Enriched), rec(1, 2, Enriched)); len(got) != 0 {
		t.Fatalf("a redelivered stage inserted again: %v", got)
	}
	// A rejection comes after the stages before its own, with its reason.
	r := rec(0, 1, Rejected)
	r.OrderID, r.Stage, r.Reason = 2, Validated, "ip on the fraud list"
	ts := v.transitions([]Record{r}, now)
	if got := statuses(ts); !slices.Equal(got, []string{"2-generated", "2-rejected"}) || ts[0].docs[1].Reason != "ip on the fraud list" {
		t.Fatalf("rejected: %v %+v", got, ts)
	}
	// An open order (no line count) is tracked over the lines seen, by
	// product: it is validated only once every line seen is.
	open := func(product int, st Status) Record { return Record{OrderID: 3, Line: product, Status: st} }
	if got := step(open(1001, Validated), open(1448, Generated)); !slices.Equal(got, []string{"3-generated"}) {
		t.Fatalf("open order, one line behind: %v", got)
	}
	if got := step(open(1448, Validated)); !slices.Equal(got, []string{"3-validated"}) {
		t.Fatalf("open order caught up: %v", got)
	}
}
