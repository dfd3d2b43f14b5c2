package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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

// apply writes the statuses the batch completes, in one insert, and commits
// them.
func (v *View) apply(ctx context.Context, recs []Record, now time.Time) error {
	if err := v.learnFinished(ctx, recs); err != nil {
		return err
	}
	return v.write(ctx, v.transitions(recs, now))
}

// finishedSteps are the bits of written that say an order is finished for
// an undecodable message keyed with its id (see fold.order).
var finishedSteps = uint8(1<<step(Delivered) | 1<<step(Rejected))

// learnFinished asks order_status, for each undecodable message of recs
// keyed with an order id this process has not seen finish, whether another
// process finished that order: two finds by _id, fast on any server. The
// answer keeps a garbage message from giving another router's delivered
// order a failed document. Such messages are rare, so this costs nothing
// in the normal flow.
func (v *View) learnFinished(ctx context.Context, recs []Record) error {
	var ids []int64
	v.mu.Lock()
	for _, rec := range recs {
		if rec.Status == Failed && rec.Line < 0 && v.written[rec.OrderID]&finishedSteps == 0 && !slices.Contains(ids, rec.OrderID) {
			ids = append(ids, rec.OrderID)
		}
	}
	v.mu.Unlock()
	for _, id := range ids {
		for _, st := range []Status{Delivered, Rejected} {
			err := v.coll.FindOne(ctx, bson.D{{Key: "_id", Value: strconv.FormatInt(id, 10) + "-" + string(st)}},
				options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read whether order %d is %s: %w", id, st, err)
			}
			v.mu.Lock()
			v.written[id] |= 1 << step(st)
			v.mu.Unlock()
			break
		}
	}
	return nil
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
			if err := v.removeOpen(ctx, closed); err != nil {
				return err
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

// openDeleteChunk bounds the statements of one delete command: FerretDB
// holds a connection per matched statement until the command ends (see
// ../shared/notes/platform.md), so one command must not match more than a
// few dozen.
const openDeleteChunk = 40

// removeOpen deletes the entries of ids from OpenCollection, each by its
// _id. A single delete by `_id: {$in: ids}` would be one command, but
// FerretDB pushes only a plain _id equality down to SQLite: the $in is
// evaluated in Go against every document of the collection, which under a
// burst (thousands of orders in flight, thousands of ids) stalled the
// status writes for minutes.
func (v *View) removeOpen(ctx context.Context, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), openDeleteChunk)
		models := make([]mongo.WriteModel, n)
		for i, id := range ids[:n] {
			models[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}})
		}
		if _, err := v.open.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return fmt.Errorf("remove %d final orders from %s: %w", n, OpenCollection, err)
		}
		ids = ids[n:]
	}
	return nil
}
