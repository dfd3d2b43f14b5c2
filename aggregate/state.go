package aggregate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

// Spec is an aggregation as its state needs it.
type Spec struct {
	// Name names the aggregation (its handler), in its checkpoints.
	Name     string
	GroupBy  string
	Carry    []string
	Measures []Measure
	// Complete emits a group once, when every line of its order has been
	// counted; otherwise the running result is emitted when it changed.
	Complete     bool
	EmitInterval time.Duration
	// Window is the size of the tumbling windows; 0 for none.
	Window   time.Duration
	Lateness time.Duration
}

// Measure is one measure of a Spec.
type Measure struct {
	Name     string
	Op       string // config.OpSum or config.OpCount
	Field    string
	Decimals int
	Max      float64
}

// SpecFrom builds the Spec of a configured aggregation.
func SpecFrom(name string, a config.AggregateConfig) Spec {
	s := Spec{Name: name, GroupBy: a.GroupBy, Carry: a.Carry, Complete: a.Emit == config.EmitComplete,
		EmitInterval: a.EmitInterval.Duration, Lateness: a.AllowedLateness.Duration}
	for _, m := range a.Measures {
		s.Measures = append(s.Measures, Measure{Name: m.Name, Op: m.Op, Field: m.Field, Decimals: m.Decimals, Max: m.Max})
	}
	if a.Window != nil {
		s.Window = a.Window.Size.Duration
	}
	return s
}

// LineID identifies a line: its order and its place in it (the index, or
// the product id of a line without one). Every copy of a line has the same
// id, which is what makes counting it once possible.
type LineID struct {
	Order int64
	Line  int64
}

// SeenLine is a counted line with its time (unix microseconds); the
// checkpoints store them packed (see packSeen).
type SeenLine struct {
	LineID
	Time int64
}

// Group is the running result of one group, or of one group in one window.
type Group struct {
	Key string `bson:"k"`
	// Window is the window's start (unix microseconds); 0 without windows.
	Window int64             `bson:"w,omitempty"`
	Carry  map[string]string `bson:"c,omitempty"`
	// Values holds each measure: a sum in units of 10^-decimals, or a count.
	Values []int64 `bson:"v"`
	// Lines and LineCount are kept for complete emission: the lines
	// counted, and how many the order has (0 when its lines do not say).
	Lines     []int64 `bson:"l,omitempty"`
	LineCount int     `bson:"n,omitempty"`
	// Time is the newest line's time (unix microseconds).
	Time     int64 `bson:"t"`
	Complete bool  `bson:"x,omitempty"`
}

// Verdict is what Apply did with a line.
type Verdict int

// Verdicts.
const (
	Counted Verdict = iota
	Duplicate
)

// Partition is the state of an aggregation over one input partition: its
// groups, its open windows, the lines counted within the allowed lateness
// (to tell a copy from a new line) and the partition's watermark, the
// newest line time seen. It is pure logic: package aggregate's Aggregator
// stores it and feeds it.
type Partition struct {
	spec      *Spec
	Watermark int64
	groups    map[string]*Group
	windows   map[windowKey]*Group
	seen      map[int64]map[LineID]struct{} // by time bucket
	// Changes since the last Take.
	newSeen  []SeenLine
	finished []Group
	closed   []Group
	dirty    map[string]bool
	rollup   Rollup
}

// Rollup is a partition's totals: every measure over every counted line,
// the number of groups begun, and the same per minute of line time for the
// last RollupMinutes minutes. Readers add the partitions' rollups: revenue
// per minute, orders and the average order value come from these.
type Rollup struct {
	Values  []int64        `bson:"values"`
	Groups  int64          `bson:"groups"`
	Minutes []MinuteRollup `bson:"minutes"`
}

// MinuteRollup is a Rollup of one minute.
type MinuteRollup struct {
	Start  int64   `bson:"start"` // unix microseconds
	Values []int64 `bson:"values"`
	Groups int64   `bson:"groups"`
}

// RollupMinutes is how many minutes a Rollup keeps.
const RollupMinutes = 60

func (r *Rollup) add(at int64, values []int64, newGroup bool) {
	if len(r.Values) != len(values) {
		r.Values = make([]int64, len(values))
	}
	for i, v := range values {
		r.Values[i] += v
	}
	minute := at - at%int64(time.Minute/time.Microsecond)
	i, found := slices.BinarySearchFunc(r.Minutes, minute, func(m MinuteRollup, s int64) int { return cmp.Compare(m.Start, s) })
	if !found {
		if len(r.Minutes) >= RollupMinutes && i == 0 {
			// Older than every minute kept: in the totals only.
			if newGroup {
				r.Groups++
			}
			return
		}
		r.Minutes = slices.Insert(r.Minutes, i, MinuteRollup{Start: minute, Values: make([]int64, len(values))})
		if len(r.Minutes) > RollupMinutes {
			r.Minutes = slices.Delete(r.Minutes, 0, 1)
			i--
		}
	}
	m := &r.Minutes[i]
	for j, v := range values {
		m.Values[j] += v
	}
	if newGroup {
		r.Groups++
		m.Groups++
	}
}

func (r Rollup) clone() Rollup {
	c := Rollup{Values: slices.Clone(r.Values), Groups: r.Groups, Minutes: slices.Clone(r.Minutes)}
	for i := range c.Minutes {
		c.Minutes[i].Values = slices.Clone(c.Minutes[i].Values)
	}
	return c
}

// Rollup returns a copy of the partition's totals.
func (p *Partition) Rollup() Rollup { return p.rollup.clone() }

type windowKey struct {
	key   string
	start int64
}

// NewPartition returns the empty state of a partition.
func NewPartition(spec *Spec) *Partition {
	return &Partition{spec: spec, groups: map[string]*Group{}, windows: map[windowKey]*Group{},
		seen: map[int64]map[LineID]struct{}{}, dirty: map[string]bool{}}
}

func (p *Partition) bucketWidth() int64 {
	return max(p.spec.Lateness.Microseconds()/4, int64(time.Second/time.Microsecond))
}

// horizon is the oldest line time still counted.
func (p *Partition) horizon() int64 { return p.Watermark - p.spec.Lateness.Microseconds() }

// ErrLate marks a line older than the allowed lateness.
var ErrLate = errors.New("late")

// Apply counts a line, or says it is a copy of one counted. A line that
// cannot be counted gets a permanent error: a measure that is not a finite
// number within its bound (invalid_input), or a time older than the
// allowed lateness behind the partition's newest line (late).
func (p *Partition) Apply(l order.Line) (Verdict, error) {
	t, err := order.ParseTime(l.Time)
	if err != nil {
		return 0, failure.Permanent(failure.InvalidInput, fmt.Errorf("time %q: %w", l.Time, err))
	}
	at := t.UnixMicro()
	values := make([]int64, len(p.spec.Measures))
	for i, m := range p.spec.Measures {
		if m.Op == config.OpCount {
			values[i] = 1
			continue
		}
		v := numberOf(m.Field, l)
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return 0, failure.Permanent(failure.InvalidInput, fmt.Errorf("%s is %v: not a number %s can sum", m.Field, v, p.spec.Name))
		case m.Max > 0 && v > m.Max:
			return 0, failure.Permanent(failure.InvalidInput, fmt.Errorf("%s %v is over the bound of %s (%v)", m.Field, v, p.spec.Name, m.Max))
		}
		units := math.Round(v * math.Pow10(m.Decimals))
		if math.Abs(units) > 1<<53 {
			return 0, failure.Permanent(failure.InvalidInput, fmt.Errorf("%s %v is too large to sum exactly", m.Field, v))
		}
		values[i] = int64(units)
	}
	id := LineID{Order: l.OrderID, Line: int64(l.Ident())}
	bucket := at / p.bucketWidth()
	if _, dup := p.seen[bucket][id]; dup {
		return Duplicate, nil
	}
	if at < p.horizon() {
		return 0, failure.Permanent(failure.Late, fmt.Errorf("%w: line time %s is %v behind the newest line of its partition, over %s's allowed lateness of %v",
			ErrLate, l.Time, time.Duration(p.Watermark-at)*time.Microsecond, p.spec.Name, p.spec.Lateness))
	}
	p.markSeen(SeenLine{LineID: id, Time: at})
	p.newSeen = append(p.newSeen, SeenLine{LineID: id, Time: at})
	p.Watermark = max(p.Watermark, at)

	key := keyOf(p.spec.GroupBy, l)
	g := p.groups[key]
	fresh := g == nil
	if fresh {
		g = p.newGroup(key, 0, l)
		p.groups[key] = g
	}
	p.rollup.add(at, values, fresh)
	p.add(g, l, at, values)
	if p.spec.Complete && g.LineCount > 0 && len(g.Lines) >= g.LineCount {
		g.Complete = true
		p.finished = append(p.finished, *g)
		delete(p.groups, key)
	} else {
		p.dirty[key] = true
	}
	if w := p.spec.Window.Microseconds(); w > 0 {
		wk := windowKey{key: key, start: at - at%w}
		wg := p.windows[wk]
		if wg == nil {
			wg = p.newGroup(key, wk.start, l)
			p.windows[wk] = wg
		}
		p.add(wg, l, at, values)
	}
	return Counted, nil
}

func (p *Partition) markSeen(s SeenLine) {
	bucket := s.Time / p.bucketWidth()
	m := p.seen[bucket]
	if m == nil {
		m = map[LineID]struct{}{}
		p.seen[bucket] = m
	}
	m[s.LineID] = struct{}{}
}

func (p *Partition) newGroup(key string, window int64, l order.Line) *Group {
	g := &Group{Key: key, Window: window, Values: make([]int64, len(p.spec.Measures))}
	if len(p.spec.Carry) > 0 {
		g.Carry = map[string]string{}
		for _, f := range p.spec.Carry {
			g.Carry[f] = textOf(f, l)
		}
	}
	return g
}

func (p *Partition) add(g *Group, l order.Line, at int64, values []int64) {
	for i, v := range values {
		g.Values[i] += v
	}
	g.Time = max(g.Time, at)
	if p.spec.Complete && g.Window == 0 {
		g.Lines = append(g.Lines, int64(l.Ident()))
		if l.LineCount > 0 {
			g.LineCount = l.LineCount
		}
	}
	for f, v := range g.Carry {
		if v == "" {
			g.Carry[f] = textOf(f, l)
		}
	}
}

// Advance closes what the watermark has passed: windows whose end is more
// than the allowed lateness behind it, and (complete emission) orders
// whose newest line is, which are finished as incomplete. It forgets the
// lines older than the lateness, which could only be counted as late.
func (p *Partition) Advance() {
	horizon := p.horizon()
	width := p.bucketWidth()
	for b := range p.seen {
		if (b+1)*width <= horizon {
			delete(p.seen, b)
		}
	}
	if p.spec.Complete {
		for key, g := range p.groups {
			if g.Time < horizon {
				p.finished = append(p.finished, *g)
				delete(p.groups, key)
				delete(p.dirty, key)
			}
		}
	}
	w := p.spec.Window.Microseconds()
	for wk, g := range p.windows {
		if wk.start+w <= horizon {
			p.closed = append(p.closed, *g)
			delete(p.windows, wk)
		}
	}
}

// Delta is what changed in a partition since the last Take.
type Delta struct {
	// Seen are the lines counted.
	Seen []SeenLine
	// Finished are the groups emitted once (complete emission): complete
	// orders, and orders closed incomplete by the watermark.
	Finished []Group
	// Closed are the windows the watermark closed.
	Closed []Group
}

// Take returns the changes since the last Take and forgets them.
func (p *Partition) Take() Delta {
	d := Delta{Seen: p.newSeen, Finished: p.finished, Closed: p.closed}
	p.newSeen, p.finished, p.closed = nil, nil, nil
	return d
}

// Changed returns the groups whose running result changed since the last
// call (changes emission), sorted by key, and forgets them.
func (p *Partition) Changed() []Group {
	out := make([]Group, 0, len(p.dirty))
	for key := range p.dirty {
		if g := p.groups[key]; g != nil {
			out = append(out, *g)
		}
	}
	clear(p.dirty)
	slices.SortFunc(out, func(a, b Group) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Snapshot is a partition's state without its seen lines, which the
// checkpoints carry as deltas.
type Snapshot struct {
	Watermark int64   `bson:"watermark"`
	Groups    []Group `bson:"groups"`
	Windows   []Group `bson:"windows"`
	Rollup    Rollup  `bson:"rollup"`
}

// Snapshot returns the partition's groups and open windows. The groups
// are copies: the state goes on changing.
func (p *Partition) Snapshot() Snapshot {
	s := Snapshot{Watermark: p.Watermark, Groups: make([]Group, 0, len(p.groups)), Windows: make([]Group, 0, len(p.windows)),
		Rollup: p.rollup.clone()}
	for _, g := range p.groups {
		s.Groups = append(s.Groups, cloneGroup(g))
	}
	for _, g := range p.windows {
		s.Windows = append(s.Windows, cloneGroup(g))
	}
	return s
}

func cloneGroup(g *Group) Group {
	c := *g
	c.Values = slices.Clone(g.Values)
	c.Lines = slices.Clone(g.Lines)
	if g.Carry != nil {
		c.Carry = make(map[string]string, len(g.Carry))
		for k, v := range g.Carry {
			c.Carry[k] = v
		}
	}
	return c
}

// Restore returns the state a snapshot and the lines counted up to it
// describe. Every group is marked changed, so that its result is written
// again (results are absolute, so writing one twice is harmless).
func Restore(spec *Spec, s Snapshot, seen []SeenLine) *Partition {
	p := NewPartition(spec)
	p.Watermark = s.Watermark
	p.rollup = s.Rollup.clone()
	for i := range s.Groups {
		g := cloneGroup(&s.Groups[i])
		if len(g.Values) != len(spec.Measures) {
			g.Values = make([]int64, len(spec.Measures))
		}
		p.groups[g.Key] = &g
		p.dirty[g.Key] = true
	}
	for i := range s.Windows {
		g := cloneGroup(&s.Windows[i])
		p.windows[windowKey{key: g.Key, start: g.Window}] = &g
	}
	horizon := p.horizon()
	for _, l := range seen {
		if l.Time >= horizon-p.bucketWidth() {
			p.markSeen(l)
		}
	}
	return p
}
