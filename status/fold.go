package status

import (
	"slices"
	"time"
)

// fold accumulates the records of one order. Its result depends only on the
// set of records, not on their order or repetition.
type fold struct {
	id      int64
	lines   int
	line    []lineFold
	failed  string // a failure of the order's undecodable message (line -1)
	first   time.Time
	last    time.Time
	history bool
	events  []Event
	// An open order (lines in the original system's format, see
	// order.Line.Open) has no line count: its lines are kept in line in the
	// order seen, by product id (openIdx), and it is final only once none
	// came for quiet.
	openIdx map[int32]int
	openIDs []int
	quiet   time.Duration
}

type lineFold struct {
	reached     uint8 // bit i set: stage of rank i+1 recorded
	route       string
	rejected    bool
	rejectedWhy string
	failed      bool
	failedRank  int // rank of the stage the line failed to reach
	failedWhy   string
}

func (f *fold) add(d *batchDoc, r *recDoc) {
	t := r.Time
	if f.first.IsZero() || t.Before(f.first) {
		f.first = t
	}
	if t.After(f.last) {
		f.last = t
	}
	if n := int(r.Lines); n > f.lines {
		f.lines = n
	}
	if f.history {
		ev := Event{Line: int(r.Line), Status: d.Status, Stage: d.Stage, Time: t, Handler: d.Handler,
			Topic: d.Topic, Partition: r.Partition, Offset: r.Offset, Output: d.Output, Route: d.Route,
			Reason: r.Reason, Partner: r.Partner, Detail: r.Detail}
		f.events = append(f.events, ev)
	}
	if r.Line < 0 {
		if d.Status == Failed && f.failed == "" {
			f.failed = r.Reason
		}
		return
	}
	l := f.lineFor(r)
	switch d.Status {
	case Rejected:
		if !l.rejected {
			l.rejected, l.rejectedWhy = true, r.Reason
		}
	case Failed:
		// Keep the failure of the latest stage; a later success there
		// clears it (a replay that worked).
		if rank := d.Stage.Rank(); !l.failed || rank > l.failedRank {
			l.failed, l.failedRank, l.failedWhy = true, rank, r.Reason
		}
	default:
		if rank := d.Status.Rank(); rank > 0 {
			l.reached |= 1 << (rank - 1)
		}
		if d.Route != "" {
			l.route = d.Route
		}
	}
}

// lineFor returns the line a record is about.
func (f *fold) lineFor(r *recDoc) *lineFold {
	if r.Lines > 0 || f.lines > 0 {
		return f.lineAt(int(r.Line))
	}
	if f.openIdx == nil {
		f.openIdx = map[int32]int{}
	}
	i, ok := f.openIdx[r.Line]
	if !ok {
		i = len(f.line)
		f.openIdx[r.Line] = i
		f.line = append(f.line, lineFold{})
		f.openIDs = append(f.openIDs, int(r.Line))
	}
	return &f.line[i]
}

func (f *fold) lineAt(i int) *lineFold {
	for len(f.line) <= i {
		f.line = append(f.line, lineFold{})
	}
	return &f.line[i]
}

// highest is the rank of the highest stage a line reached.
func (l *lineFold) highest() int {
	for rank := len(Stages); rank > 0; rank-- {
		if l.reached&(1<<(rank-1)) != 0 {
			return rank
		}
	}
	return 0
}

func (l *lineFold) failedNow() bool { return l.failed && l.highest() < max(l.failedRank, 1) }

func (f *fold) order(deliveryEnabled bool) *Order {
	o := &Order{ID: f.id, Lines: f.lines, FirstSeen: f.first, LastSeen: f.last}
	n := max(f.lines, len(f.line))
	open := f.lines == 0 && len(f.openIDs) > 0
	idx := make([]int, n) // the lines in the order they are shown
	for i := range idx {
		idx[i] = i
	}
	if open {
		o.Lines, o.Open = n, true
		slices.SortFunc(idx, func(a, b int) int { return f.openIDs[a] - f.openIDs[b] })
	}
	minRank, external, delivered := len(Stages), 0, 0
	for _, i := range idx {
		var l lineFold
		if i < len(f.line) {
			l = f.line[i]
		}
		ls := LineState{Line: i, Route: l.route, reached: l.highest()}
		if open {
			ls.Line = f.openIDs[i]
		}
		switch {
		case l.rejected:
			ls.Status, ls.Reason = Rejected, l.rejectedWhy
			if o.Status != Rejected {
				o.Status, o.Reason = Rejected, l.rejectedWhy
			}
		case l.failedNow():
			ls.Status, ls.Reason = Failed, l.failedWhy
			if o.Status == "" {
				o.Status, o.Reason = Failed, l.failedWhy
			}
		case ls.reached == 0:
			ls.Status = Pending
		default:
			ls.Status = Stages[ls.reached-1]
		}
		o.Progress = append(o.Progress, ls)
		// Delivery is the external lines' last stage; an internal line is
		// done once routed.
		rank := min(ls.reached, Routed.Rank())
		minRank = min(minRank, rank)
		if l.route == "external" {
			external++
			if ls.reached >= Delivered.Rank() {
				delivered++
			}
		}
	}
	if o.Status == "" {
		switch {
		case n == 0 || minRank == 0:
			o.Status = Pending
		case minRank == Routed.Rank() && external > 0 && delivered == external:
			o.Status = Delivered
		default:
			o.Status = Stages[minRank-1]
		}
		// An undecodable message keyed with the order's id fails the order,
		// unless its lines had already made it final: a reused or garbage
		// id never moves a finished order backwards (the failure stays in
		// the history).
		finished := o.Status == Delivered || (o.Status == Routed && (external == 0 || !deliveryEnabled))
		if f.failed != "" && !finished {
			o.Status, o.Reason = Failed, f.failed
		}
	}
	switch o.Status {
	case Rejected, Failed, Delivered:
		o.Final = true
	case Routed:
		o.Final = external == 0 || !deliveryEnabled
	}
	if open && o.Final && time.Since(f.last) < f.quiet {
		o.Final = false // another line of the order may still come
	}
	if f.history {
		slices.SortStableFunc(f.events, func(a, b Event) int { return a.Time.Compare(b.Time) })
		seen := map[[2]int]bool{}
		for i := range f.events {
			ev := &f.events[i]
			k := [2]int{ev.Line, statusIndex(ev.Status)}
			ev.Repeat = seen[k] && ev.Status != Failed
			seen[k] = true
		}
		o.History = f.events
	}
	return o
}

func statusIndex(s Status) int {
	for i, st := range All {
		if st == s {
			return i
		}
	}
	return -1
}
