package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/orderflow/orderflow/delivery"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

// Sink hands a document to a partner and returns what confirms it (a file
// path, an HTTP status).
type Sink interface {
	Deliver(ctx context.Context, d delivery.Document) (detail string, err error)
}

// Partner is a partner and the lines it gets.
type Partner struct {
	Name       string
	RouteIDs   []int
	Categories []string
	Sink       Sink
}

func (p Partner) matches(l order.Line) bool {
	return slices.Contains(p.RouteIDs, l.RouteID) || slices.Contains(p.Categories, l.Category)
}

// DeliveryConfig configures the deliver processor.
type DeliveryConfig struct {
	Partners []Partner
	// AssemblyTimeout is how long a line waits for its order's other
	// external lines. A line whose order is being delivered waits for that
	// delivery instead, however long the timeout.
	AssemblyTimeout time.Duration
	// DeliverTimeout bounds one order's delivery: its partners' sinks and
	// the status write. It must be shorter than the subscriber's drain
	// timeout, so that a partition taken away waits for the deliveries
	// under way instead of handing their lines to a member that delivers
	// them again.
	DeliverTimeout time.Duration
	// Delivered reports whether a line of an order is already recorded as
	// delivered. It is asked only of a line that waits alone, to tell a
	// redelivered straggler of a delivered order from a real gap.
	Delivered func(ctx context.Context, orderID int64, line int) (bool, error)
	// MaxLookups is how many Delivered calls may run at once (default 2).
	// A line due to ask while the budget is spent asks later, so that under
	// a burst the lookups never take the connections the status writes
	// need.
	MaxLookups int
}

// Deliverer is the delivery stage. Each external line waits, in its own
// handler call, until every external line of its order has arrived; the
// last to arrive delivers the order to its partners, records the delivered
// statuses, and wakes the others. None of the lines is acked before the
// order is delivered, so a crash loses nothing: the lines come again and the
// order is delivered again, to the same file or with the same idempotency
// key.
type Deliverer struct {
	cfg      DeliveryConfig
	status   status.Writer
	stopping <-chan struct{}
	lookups  chan struct{} // the Delivered budget

	mu      sync.Mutex
	pending map[int64]*assembly
	// delivering holds the orders whose delivery is under way: a copy of
	// one of their lines (a redelivery) waits for that delivery's result
	// instead of starting an order of its own.
	delivering map[int64]*assembly
}

type assembly struct {
	lines   map[int]order.Line
	refs    map[int]status.LineRef
	skipped map[int]bool // lines that failed before joining (no partner)
	busy    bool         // a delivery is under way (or done)
	done    chan struct{}
	results map[int]error
}

// stragglerCheck is how long a line waits alone before asking whether its
// order was delivered already; each later ask waits twice as long.
const stragglerCheck = 2 * time.Second

// NewDeliverer builds the deliver processor.
func NewDeliverer(d Deps) (Processor, error) {
	if d.Status == nil {
		return nil, errors.New("deliver: no status writer")
	}
	cfg := d.Delivery
	if cfg.AssemblyTimeout <= 0 {
		cfg.AssemblyTimeout = time.Minute
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = 15 * time.Second
	}
	if cfg.MaxLookups <= 0 {
		cfg.MaxLookups = 2
	}
	dl := &Deliverer{cfg: cfg, status: d.Status, stopping: d.Stopping, lookups: make(chan struct{}, cfg.MaxLookups),
		pending: map[int64]*assembly{}, delivering: map[int64]*assembly{}}
	return dl.Process, nil
}

// Process handles one external line.
func (d *Deliverer) Process(ctx context.Context, line order.Line) (Outcome, error) {
	if line.Route != order.RouteExternal {
		return Outcome{}, failure.Permanent(failure.InvalidInput,
			fmt.Errorf("line %d of order %d is routed %q, not external", line.LineIndex, line.OrderID, line.Route))
	}
	if line.Open() {
		return d.deliverOpen(ctx, line)
	}
	if !slices.Contains(line.ExternalLines, line.LineIndex) {
		return Outcome{}, failure.Permanent(failure.InvalidInput,
			fmt.Errorf("line %d of order %d is external but not in its external_lines %v", line.LineIndex, line.OrderID, line.ExternalLines))
	}
	if _, ok := d.partnerFor(line); !ok {
		d.skip(line)
		return Outcome{}, failure.Permanent(failure.NoPartner,
			fmt.Errorf("no partner is configured for route_id %d or category %q", line.RouteID, line.Category))
	}
	ref, _ := status.LineFrom(ctx)
	a, complete := d.join(line, ref)
	if complete {
		d.deliver(ctx, line.OrderID, a)
	}
	return d.wait(ctx, line, a)
}

// wait waits for the delivery of line's order, and returns its result for
// the line. Only a line whose order is not being delivered gives up: when
// its partition leaves, at shutdown, or after the assembly timeout. A line
// whose order is being delivered waits for the delivery, which
// DeliverTimeout bounds.
func (d *Deliverer) wait(ctx context.Context, line order.Line, a *assembly) (Outcome, error) {
	var leaving <-chan struct{}
	if pos, ok := kafkapubsub.PositionFromCtx(ctx); ok {
		leaving = pos.Leaving
	}
	timer := time.NewTimer(d.cfg.AssemblyTimeout)
	defer timer.Stop()
	// A line still alone after a moment may be the redelivered straggler of
	// an order delivered before a crash (its siblings' offsets committed,
	// its own not): one status lookup tells, instead of the whole timeout.
	check := min(stragglerCheck, d.cfg.AssemblyTimeout)
	straggler := time.NewTimer(check)
	defer straggler.Stop()
	stopping := d.stopping
	for {
		select {
		case <-a.done:
			if err := a.results[line.LineIndex]; err != nil {
				return Outcome{}, err
			}
			return Outcome{Settled: true}, nil
		case <-ctx.Done():
			d.leave(line, a)
			err := fmt.Errorf("order %d: stopped waiting for its external lines: %w", line.OrderID, ctx.Err())
			if errors.Is(ctx.Err(), context.Canceled) {
				// Its partition went (or the message was given up on): the
				// line comes again, it is not broken.
				return Outcome{}, failure.Unavailable(err)
			}
			return Outcome{}, err
		case <-straggler.C:
			if d.busy(a) {
				continue
			}
			if done, asked := d.delivered(ctx, line, false); done {
				d.leave(line, a)
				return Outcome{Settled: true}, nil
			} else if asked {
				check *= 2
			}
			straggler.Reset(check)
		case <-leaving:
			leaving = nil
			if d.busy(a) {
				continue // the revoke waits for the delivery
			}
			// The other lines go to the partition's next owner, and so
			// does this one.
			d.leave(line, a)
			return Outcome{}, failure.Unavailable(fmt.Errorf("order %d: its partition left this router while the line waited for its external lines", line.OrderID))
		case <-stopping:
			stopping = nil
			if d.busy(a) {
				continue
			}
			// The other lines will not come before the shutdown; this one is
			// consumed again after it, with them.
			d.leave(line, a)
			return Outcome{}, failure.Unavailable(fmt.Errorf("order %d: shutting down while waiting for its external lines", line.OrderID))
		case <-timer.C:
			if d.busy(a) {
				continue // its order is being delivered: wait for that
			}
			missing := d.leave(line, a)
			if done, _ := d.delivered(ctx, line, true); done {
				// A straggler of an order delivered before a restart.
				return Outcome{Settled: true}, nil
			}
			return Outcome{}, fmt.Errorf("order %d: external lines %v did not arrive within %v", line.OrderID, missing, d.cfg.AssemblyTimeout)
		}
	}
}

// delivered asks whether line is recorded as delivered, within the lookup
// budget: when the budget is spent it waits for room if wait is set, and
// otherwise does not ask (asked is false).
func (d *Deliverer) delivered(ctx context.Context, line order.Line, wait bool) (done, asked bool) {
	if d.cfg.Delivered == nil {
		return false, false
	}
	if wait {
		select {
		case d.lookups <- struct{}{}:
		case <-ctx.Done():
			return false, false
		}
	} else {
		select {
		case d.lookups <- struct{}{}:
		default:
			return false, false
		}
	}
	defer func() { <-d.lookups }()
	done, err := d.cfg.Delivered(ctx, line.OrderID, line.LineIndex)
	return err == nil && done, true
}

func (d *Deliverer) busy(a *assembly) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return a.busy
}

func (d *Deliverer) partnerFor(l order.Line) (Partner, bool) {
	for _, p := range d.cfg.Partners {
		if p.matches(l) {
			return p, true
		}
	}
	return Partner{}, false
}

func (d *Deliverer) assemblyLocked(id int64) *assembly {
	a := d.pending[id]
	if a == nil {
		a = &assembly{lines: map[int]order.Line{}, refs: map[int]status.LineRef{}, skipped: map[int]bool{}, done: make(chan struct{})}
		d.pending[id] = a
	}
	return a
}

// join adds a line to its order's assembly and reports whether the order is
// now complete; the caller then delivers it.
func (d *Deliverer) join(line order.Line, ref status.LineRef) (*assembly, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a := d.delivering[line.OrderID]; a != nil {
		if _, ok := a.lines[line.LineIndex]; ok {
			return a, false // a copy of a line being delivered: wait for it
		}
	}
	a := d.assemblyLocked(line.OrderID)
	a.lines[line.LineIndex] = line
	a.refs[line.LineIndex] = ref
	if a.busy || !a.completeLocked(line.ExternalLines) {
		return a, false
	}
	d.startLocked(line.OrderID, a)
	return a, true
}

// skip records a line that will not join (it failed on its own), so that its
// siblings do not wait for it.
func (d *Deliverer) skip(line order.Line) {
	d.mu.Lock()
	a := d.assemblyLocked(line.OrderID)
	a.skipped[line.LineIndex] = true
	var deliver bool
	var ext []int
	for _, l := range a.lines {
		ext = l.ExternalLines
		break
	}
	if ext != nil && !a.busy && a.completeLocked(ext) {
		d.startLocked(line.OrderID, a)
		deliver = true
	}
	d.mu.Unlock()
	if deliver {
		go d.deliver(context.Background(), line.OrderID, a)
	}
}

// startLocked marks a's delivery as under way: lines of other orders'
// copies start afresh, copies of its own lines wait for it.
func (d *Deliverer) startLocked(id int64, a *assembly) {
	a.busy = true
	delete(d.pending, id)
	d.delivering[id] = a
}

func (a *assembly) completeLocked(external []int) bool {
	if len(a.lines) == 0 {
		return false
	}
	for _, i := range external {
		if _, ok := a.lines[i]; !ok && !a.skipped[i] {
			return false
		}
	}
	return true
}

// leave takes a line that stops waiting out of its assembly a and returns
// the lines still missing. A line of an assembly being delivered stays.
func (d *Deliverer) leave(line order.Line, a *assembly) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.busy || d.pending[line.OrderID] != a {
		return nil
	}
	delete(a.lines, line.LineIndex)
	delete(a.refs, line.LineIndex)
	var missing []int
	for _, i := range line.ExternalLines {
		if _, ok := a.lines[i]; !ok && !a.skipped[i] {
			missing = append(missing, i)
		}
	}
	if len(a.lines) == 0 {
		delete(d.pending, line.OrderID)
	}
	return missing
}

// deliverOpen delivers a line of the original system's format on its own:
// its order does not say which other lines it has, so there is nothing to
// wait for. The document is named by order and product, so that each open
// line of an order has its own file and idempotency key.
func (d *Deliverer) deliverOpen(ctx context.Context, line order.Line) (Outcome, error) {
	p, ok := d.partnerFor(line)
	if !ok {
		return Outcome{}, failure.Permanent(failure.NoPartner,
			fmt.Errorf("no partner is configured for route_id %d or category %q", line.RouteID, line.Category))
	}
	detail, err := p.Sink.Deliver(ctx, delivery.NewDocument(p.Name, []order.Line{line}, nil, nil))
	if err != nil {
		return Outcome{}, fmt.Errorf("deliver line of product %d of order %d to partner %s: %w", line.ProductID, line.OrderID, p.Name, err)
	}
	ref, _ := status.LineFrom(ctx)
	rec := ref.Record(status.Delivered)
	rec.Partner, rec.Detail = p.Name, detail
	if err := d.status.Record(ctx, rec); err != nil {
		return Outcome{}, failure.Unavailable(fmt.Errorf("record delivery of order %d: %w", line.OrderID, err))
	}
	return Outcome{Settled: true}, nil
}

// deliver sends each partner its lines of the order, records the delivered
// lines, and wakes every waiting line with its result.
func (d *Deliverer) deliver(ctx context.Context, orderID int64, a *assembly) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DeliverTimeout)
	defer cancel()
	results := map[int]error{}
	defer func() {
		d.mu.Lock()
		a.results = results
		if d.delivering[orderID] == a {
			delete(d.delivering, orderID)
		}
		d.mu.Unlock()
		close(a.done)
	}()
	byPartner := map[string][]order.Line{}
	partners := map[string]Partner{}
	var internal []int
	var any order.Line
	for _, l := range a.lines {
		any = l
		p, _ := d.partnerFor(l)
		byPartner[p.Name] = append(byPartner[p.Name], l)
		partners[p.Name] = p
	}
	for i := 0; i < any.LineCount; i++ {
		if !slices.Contains(any.ExternalLines, i) {
			internal = append(internal, i)
		}
	}
	for name, lines := range byPartner {
		var elsewhere []int
		for _, i := range any.ExternalLines {
			if !slices.ContainsFunc(lines, func(l order.Line) bool { return l.LineIndex == i }) {
				elsewhere = append(elsewhere, i)
			}
		}
		doc := delivery.NewDocument(name, lines, internal, elsewhere)
		detail, err := partners[name].Sink.Deliver(ctx, doc)
		if err == nil {
			recs := make([]status.Record, 0, len(lines))
			for _, l := range lines {
				rec := a.refs[l.LineIndex].Record(status.Delivered)
				rec.OrderID, rec.Line, rec.Lines = orderID, l.LineIndex, l.LineCount
				rec.Partner, rec.Detail = name, detail
				rec.Expect = len(any.ExternalLines)
				recs = append(recs, rec)
			}
			err = d.status.Record(ctx, recs...)
		} else {
			err = fmt.Errorf("deliver order %d to partner %s: %w", orderID, name, err)
		}
		for _, l := range lines {
			results[l.LineIndex] = err
		}
	}
}
