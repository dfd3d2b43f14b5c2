package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/internal/mongoerr"
)

// ViewCollection is the original system's status collection, kept for any
// MongoDB client: one document per status an order reached, inserted when
// the order reached it, never changed.
//
//	{_id: "11100-validated", order_id: 11100, status: "validated", step: 2,
//	 time: ISODate(...), lines: 2}
//
// `find({"order_id": N})` lists an order's statuses oldest first in insertion
// order, so the last one printed is the current one; `step` orders them too
// (generated 1 … delivered 5, failed 6, rejected 7), for the rare case where
// two routers insert an order's consecutive statuses at the same moment, and
// for clients that sort. Rejected and failed documents carry a `reason`. The
// `_id` makes every insert idempotent: a redelivered line, a second router or
// a restart after a crash cannot add a status twice.
const ViewCollection = "order_status"

// step numbers the statuses of the view: a later step is a later status.
func step(s Status) int {
	switch s {
	case Failed:
		return 6
	case Rejected:
		return 7
	}
	return s.Rank()
}

// ViewEntry is one document of the view.
type ViewEntry struct {
	ID      string    `bson:"_id"`
	OrderID int64     `bson:"order_id"`
	Status  Status    `bson:"status"`
	Step    int       `bson:"step"`
	Time    time.Time `bson:"time"`
	Lines   int       `bson:"lines"`
	Reason  string    `bson:"reason,omitempty"`
	// External marks a routed order with external lines: when delivery is
	// enabled it is final only once delivered.
	External bool `bson:"external,omitempty"`
	// WriteID names the write that inserted the document (see
	// CountsCollection).
	WriteID string `bson:"write_id"`
}

// EnsureViewIndexes creates the indexes a real MongoDB uses for the view's
// plain queries: by order_id and by status.
func EnsureViewIndexes(ctx context.Context, db *mongo.Database) error {
	// One at a time: FerretDB v1 drops the connection on a createIndexes
	// that creates the collection and two indexes at once.
	for _, field := range []string{"order_id", "status"} {
		_, err := db.Collection(ViewCollection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: field, Value: 1}}})
		if err != nil {
			return fmt.Errorf("create index on %s.%s: %w", ViewCollection, field, err)
		}
	}
	return nil
}

// ViewConfig configures a View.
type ViewConfig struct {
	// Resolve reads an order's status from its records, the truth. The view
	// asks it for an order whose lines this process saw only in part at
	// some stage (its partition moved mid-order, or a line waits long), so
	// that such an order's status still reaches the view.
	Resolve func(ctx context.Context, id int64) (*Order, error)
	// ResolveAfter is how long a partly seen stage waits before Resolve is
	// asked. Lines of one order travel together, so this only catches
	// the exceptions.
	ResolveAfter time.Duration
	// MaxTracked bounds the orders whose partial stages are kept.
	MaxTracked int
	// SettleAfter is the age at which a write's intent (see
	// CountsCollection) is taken for that of a writer stopped midway. It
	// must exceed the longest a live writer takes from its intent to its
	// count, which the status write timeout bounds; default 30 s.
	SettleAfter time.Duration
	// DeliveryEnabled says that external lines go on to a delivery stage,
	// so a routed order with external lines is not final yet.
	DeliveryEnabled bool
	Logger          *slog.Logger
}

func (c *ViewConfig) setDefaults() {
	if c.ResolveAfter == 0 {
		c.ResolveAfter = 5 * time.Second
	}
	if c.SettleAfter == 0 {
		c.SettleAfter = 30 * time.Second
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = 200_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// View keeps ViewCollection from the records a Recorder writes. An order's
// status at a stage is reached when every line of the order passed that
// stage; all lines of an order share a partition, so the process that
// records a stage for one line records it for the others too, and the view
// needs no read to know the stage is complete. Partial stages are kept in
// memory, bounded, and resolved from the records when they stay partial.
type View struct {
	coll   *mongo.Collection
	counts *mongo.Collection // CountsCollection
	open   *mongo.Collection // OpenCollection
	writer string            // this View's document in counts
	cfg    ViewConfig

	wmu sync.Mutex // one write at a time: the intent, the inserts, the count

	mu         sync.Mutex
	partial    map[partialKey]*partialStage
	openOrders map[int64]*openOrder
	written    map[int64]uint8 // bit s: this process inserted step s, per order
}

// openOrder is what this process saw of an open order (lines without a line
// count): the highest stage each line reached, by product id, and whether it
// went external.
type openOrder struct {
	rank     map[int]int
	external map[int]bool
	last     time.Time
}

// status is the order's status over the lines seen, as the records give it:
// delivered once every external line is and every line is routed, else the
// lowest stage.
func (o *openOrder) status() Status {
	low, ext, delivered := len(Stages), 0, 0
	for line, r := range o.rank {
		low = min(low, min(r, Routed.Rank()))
		if o.external[line] {
			ext++
			if r >= Delivered.Rank() {
				delivered++
			}
		}
	}
	if low == Routed.Rank() && ext > 0 && delivered == ext {
		return Delivered
	}
	return Stages[low-1]
}

type partialKey struct {
	order int64
	step  int
}

type partialStage struct {
	lines    int
	external bool   // a line of the order went external
	seen     uint64 // bit i: line i passed the stage
	expect   int    // lines to see: lines, or the external lines for delivered
	since    time.Time
}

// NewView returns a view written to the collection ViewCollection of db.
func NewView(db *mongo.Database, cfg ViewConfig) *View {
	v := newView(db.Collection(ViewCollection), cfg)
	v.counts, v.open = db.Collection(CountsCollection), db.Collection(OpenCollection)
	return v
}

func newView(coll *mongo.Collection, cfg ViewConfig) *View {
	cfg.setDefaults()
	return &View{coll: coll, cfg: cfg, writer: "w-" + newBatchID(),
		partial: map[partialKey]*partialStage{}, openOrders: map[int64]*openOrder{}, written: map[int64]uint8{}}
}

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
		case rec.Status == Failed && rec.Line < 0 && v.written[rec.OrderID]&(1<<step(Delivered)|1<<step(Rejected)) != 0:
			// An undecodable message reusing a finished order's id does
			// not fail it (see fold.order). This process knows only what it
			// inserted itself: another router's finished order still gets
			// a failed document, a gap the note on the view states.
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

// apply writes the statuses the batch completes, in one insert, and commits
// them.
func (v *View) apply(ctx context.Context, recs []Record, now time.Time) error {
	return v.write(ctx, v.transitions(recs, now))
}

// write inserts the documents of ts in one command, then commits them.
//
// An order whose first document this write inserts, and which is not final,
// enters OpenCollection first; one that becomes final leaves it after.
func (v *View) write(ctx context.Context, ts []transition) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	batch := newBatchID()
	var docs []ViewEntry
	var cs []contribution
	var opened []any
	var closed []string
	for _, t := range ts {
		final := t.final(v.cfg.DeliveryEnabled)
		for _, d := range t.docs {
			if d.Status == Routed {
				d.External = t.external
			}
			d.WriteID = batch
			docs = append(docs, d)
			cs = append(cs, contribution{id: d.ID, status: d.Status, lines: d.Lines, after: max(t.after, 0), external: d.External})
			if d.Status == Generated && !final {
				opened = append(opened, openEntry{ID: strconv.FormatInt(t.order, 10), OrderID: t.order, Since: d.Time})
			}
		}
		if final && len(t.docs) > 0 {
			closed = append(closed, strconv.FormatInt(t.order, 10))
		}
	}
	if len(docs) > 0 {
		if len(opened) > 0 {
			_, err := v.open.InsertMany(ctx, opened, options.InsertMany().SetOrdered(false))
			if err != nil && !mongoerr.OnlyDuplicateKeys(err) {
				return fmt.Errorf("write %d orders to %s: %w", len(opened), OpenCollection, err)
			}
		}
		if err := v.writeCounted(ctx, batch, docs, cs); err != nil {
			return err
		}
		if len(closed) > 0 {
			if _, err := v.open.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: closed}}}}); err != nil {
				return fmt.Errorf("remove %d final orders from %s: %w", len(closed), OpenCollection, err)
			}
		}
	}
	v.commit(ts)
	return nil
}

// openEntry is a document of OpenCollection.
type openEntry struct {
	ID      string    `bson:"_id"`
	OrderID int64     `bson:"order_id"`
	Since   time.Time `bson:"since"`
}

// insert inserts docs unordered, which both MongoDB and FerretDB apply in the
// order given, going on past the duplicates, and reports which it inserted.
func (v *View) insert(ctx context.Context, docs []ViewEntry) ([]bool, error) {
	inserted := make([]bool, len(docs))
	for i := range inserted {
		inserted[i] = true
	}
	_, err := v.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil {
		dups, ok := mongoerr.DuplicateIndexes(err)
		if !ok {
			return nil, fmt.Errorf("write %d statuses to %s: %w", len(docs), ViewCollection, err)
		}
		for _, i := range dups {
			if i >= 0 && i < len(inserted) {
				inserted[i] = false
			}
		}
	}
	return inserted, nil
}

func (v *View) commit(ts []transition) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.written) > v.cfg.MaxTracked {
		// Only a saving: what is forgotten is inserted again, as a
		// duplicate that is refused.
		clear(v.written)
	}
	for _, t := range ts {
		for _, k := range t.done {
			delete(v.partial, k)
		}
		for _, d := range t.docs {
			v.written[t.order] |= 1 << d.Step
		}
	}
}

// pruneOpen forgets the open orders that saw no line since before.
func (v *View) pruneOpen(before time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, o := range v.openOrders {
		if o.last.Before(before) {
			delete(v.openOrders, id)
		}
	}
}

// Run resolves partial stages that stayed partial for ResolveAfter, until ctx
// ends.
func (v *View) Run(ctx context.Context) {
	t := time.NewTicker(min(v.cfg.ResolveAfter/4, time.Second))
	defer t.Stop()
	lastUpkeep := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.pruneOpen(time.Now().Add(-10 * time.Minute))
			if time.Since(lastUpkeep) >= upkeepInterval {
				lastUpkeep = time.Now()
				if err := v.upkeep(ctx); err != nil && ctx.Err() == nil {
					v.cfg.Logger.Warn("order_status: upkeep of counters and open orders failed; will retry", "error", err)
				}
			}
			if err := v.resolve(ctx); err != nil && ctx.Err() == nil {
				v.cfg.Logger.Warn("order_status: resolving partly seen orders failed; will retry", "error", err)
			}
		}
	}
}

// resolve reads the orders whose stages stayed partial and writes the status
// their records give.
func (v *View) resolve(ctx context.Context) error {
	if v.cfg.Resolve == nil {
		return nil
	}
	v.mu.Lock()
	var ids []int64
	seen := map[int64]bool{}
	for k, p := range v.partial {
		if time.Since(p.since) >= v.cfg.ResolveAfter && !seen[k.order] {
			seen[k.order] = true
			ids = append(ids, k.order)
		}
		if len(ids) >= 100 {
			break
		}
	}
	v.mu.Unlock()
	var errs []error
	for _, id := range ids {
		o, err := v.cfg.Resolve(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var t *transition
		v.mu.Lock()
		var done []partialKey
		for k := range v.partial {
			if k.order == id {
				done = append(done, k)
			}
		}
		if o != nil && o.Status != Pending {
			below := o.Status.Rank()
			if !o.Status.IsStage() {
				below = Routed.Rank() + 1 // a failed or rejected order: its stages are not known here
				for _, l := range o.Progress {
					below = min(below, l.reached+1)
				}
			}
			external := o.Status == Delivered
			for _, l := range o.Progress {
				external = external || l.Route == "external"
			}
			t = &transition{order: id, step: step(o.Status), done: done, after: below - 1, external: external,
				docs: v.chain(id, o.Status, o.Lines, o.Reason, below, time.Now())}
		} else {
			for _, k := range done {
				delete(v.partial, k)
			}
		}
		v.mu.Unlock()
		if t == nil {
			continue
		}
		if err := v.write(ctx, []transition{*t}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitView waits until CompareView finds nothing or ctx ends, and returns
// what it found last: the view trails the records by at most the resolve
// interval (see ViewConfig.ResolveAfter).
func WaitView(ctx context.Context, db *mongo.Database, orders []*Order) ([]string, error) {
	for {
		wrong, err := CompareView(ctx, db, orders)
		if err != nil || len(wrong) == 0 {
			return wrong, err
		}
		select {
		case <-ctx.Done():
			return wrong, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// CompareView reads the whole view with a plain find, as any client would,
// and checks it against orders (the truth, from the records): for each
// order, the last document in insertion order must carry the order's status,
// and the steps must only grow in insertion order. It returns one line per
// disagreement. The tests and the fault suite use it.
func CompareView(ctx context.Context, db *mongo.Database, orders []*Order) ([]string, error) {
	cur, err := db.Collection(ViewCollection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ViewCollection, err)
	}
	defer cur.Close(ctx)
	last := map[int64]ViewEntry{}
	var problems []string
	for cur.Next(ctx) {
		var d ViewEntry
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("read %s: %w", ViewCollection, err)
		}
		// A stage after a later stage, or after the order failed or was
		// rejected, is out of order; a stage after failed is a replay.
		if prev, ok := last[d.OrderID]; ok && d.Step < prev.Step && d.Status.IsStage() && prev.Status != Failed {
			problems = append(problems, fmt.Sprintf("order %d: %s inserted after %s", d.OrderID, d.Status, prev.Status))
		}
		last[d.OrderID] = d
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", ViewCollection, err)
	}
	for _, o := range orders {
		d, ok := last[o.ID]
		switch {
		case !ok && o.Status != Pending:
			problems = append(problems, fmt.Sprintf("order %d: %s, but not in %s", o.ID, o.Status, ViewCollection))
		case ok && d.Status != o.Status:
			problems = append(problems, fmt.Sprintf("order %d: %s, but %s says %s", o.ID, o.Status, ViewCollection, d.Status))
		case ok && (d.Status == Rejected || d.Status == Failed) && d.Reason == "":
			problems = append(problems, fmt.Sprintf("order %d: %s without a reason in %s", o.ID, d.Status, ViewCollection))
		}
	}
	return problems, nil
}
