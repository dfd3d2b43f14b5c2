package status

import (
	"math/bits"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/failure"
)

// transition is a status an order reached, found in a batch, with the
// documents to insert for it.
type transition struct {
	order int64
	step  int
	docs  []ViewEntry
	done  []partialKey // partial stages it completes
	// after is, for a rejected or failed order, the rank of the last stage
	// it reached; external says a routed order has external lines.
	after    int
	external bool
}

// final reports whether t's status is one the order will not leave by
// itself.
func (t transition) final(deliveryEnabled bool) bool {
	switch t.step {
	case step(Delivered), step(Rejected), step(Failed):
		return true
	case step(Routed):
		return !deliveryEnabled || !t.external
	}
	return false
}

// chain returns the documents that say order id reached st: the stages
// before it first, then st, leaving out the steps this process inserted
// already. Inserting the earlier stages too, in order, is what keeps the
// view's insertion order the order of the statuses: a stage's document is
// never inserted before an earlier stage's, whichever process, batch or
// restart inserts which. Earlier ones that another process inserted are
// refused as duplicates, which is cheap.
func (v *View) chain(id int64, st Status, lines int, reason string, below int, now time.Time) []ViewEntry {
	var docs []ViewEntry
	have := v.written[id]
	add := func(st Status, reason string) {
		if have&(1<<step(st)) == 0 {
			docs = append(docs, ViewEntry{ID: strconv.FormatInt(id, 10) + "-" + string(st), OrderID: id,
				Status: st, Step: step(st), Time: now, Lines: lines, Reason: failure.Reason(reason)})
		}
	}
	for rank := 1; rank < below && rank <= len(Stages); rank++ {
		add(Stages[rank-1], "")
	}
	add(st, reason)
	return docs
}

// reached returns the rank below which a record says every stage was passed:
// its own stage's for a stage record, the stage it failed to reach (or was
// rejected at) otherwise.
func reached(rec Record) int {
	switch rec.Status {
	case Rejected, Failed:
		return rec.Stage.Rank()
	}
	return rec.Status.Rank()
}

// transitions folds recs into the partial stages and returns, per order, the
// latest status the batch completes. Nothing is committed: apply does that
// once the documents are written, so a failed write loses nothing.
func (v *View) transitions(recs []Record, now time.Time) []transition {
	v.mu.Lock()
	defer v.mu.Unlock()
	best := map[int64]*transition{}
	var order []int64
	touched := map[int64]Record{} // open orders of the batch, with one of their records
	var openIDs []int64
	reach := func(rec Record, done *partialKey, external bool) {
		s := step(rec.Status)
		if v.written[rec.OrderID]&(1<<s) != 0 {
			return
		}
		t := best[rec.OrderID]
		if t == nil {
			t = &transition{order: rec.OrderID}
			best[rec.OrderID] = t
			order = append(order, rec.OrderID)
		}
		if done != nil {
			t.done = append(t.done, *done)
		}
		if s < t.step {
			return // coalesced: the later status's chain includes it
		}
		t.step = s
		t.after = reached(rec) - 1
		t.external = external || rec.Status == Delivered
		t.docs = v.chain(rec.OrderID, rec.Status, rec.Lines, rec.Reason, reached(rec), now)
	}
	for _, rec := range recs {
		switch {
		case rec.Status == Failed && rec.Line < 0 && v.written[rec.OrderID]&finishedSteps != 0:
			// An undecodable message reusing a finished order's id does
			// not fail it (see fold.order), whichever process finished it
			// (learnFinished asked order_status).
		case rec.Status == Rejected || rec.Status == Failed:
			reach(rec, nil, false)
		case rec.Line >= 0 && rec.Lines == 0 && rec.Status.IsStage():
			o := v.openOrders[rec.OrderID]
			if o == nil {
				if len(v.openOrders) >= v.cfg.MaxTracked {
					continue
				}
				o = &openOrder{rank: map[int]int{}, external: map[int]bool{}}
				v.openOrders[rec.OrderID] = o
			}
			o.rank[rec.Line] = max(o.rank[rec.Line], rec.Status.Rank())
			if rec.Route == "external" {
				o.external[rec.Line] = true
			}
			o.last = now
			if _, seen := touched[rec.OrderID]; !seen {
				openIDs = append(openIDs, rec.OrderID)
			}
			touched[rec.OrderID] = rec
		case rec.Line < 0 || rec.Line >= 64 || rec.Lines < 1 || !rec.Status.IsStage():
		default:
			k := partialKey{rec.OrderID, step(rec.Status)}
			p := v.partial[k]
			if p == nil {
				if len(v.partial) >= v.cfg.MaxTracked {
					continue // a later stage or the resolver brings it
				}
				expect := rec.Lines
				if rec.Status == Delivered && rec.Expect > 0 {
					expect = rec.Expect
				}
				p = &partialStage{lines: rec.Lines, expect: expect, since: now}
				v.partial[k] = p
			}
			p.seen |= 1 << rec.Line
			p.external = p.external || rec.Route == "external"
			if bits.OnesCount64(p.seen) >= p.expect {
				reach(rec, &k, p.external)
			}
		}
	}
	// An open order's status is taken over the whole batch: a record of
	// one line must not speak for another line seen in the same batch.
	for _, id := range openIDs {
		o, rec := v.openOrders[id], touched[id]
		rec.Status, rec.Lines = o.status(), len(o.rank) // the lines seen so far
		reach(rec, nil, len(o.external) > 0)
	}
	out := make([]transition, 0, len(order))
	for _, id := range order {
		out = append(out, *best[id])
	}
	return out
}
