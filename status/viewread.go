package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ViewReader reads order statuses from the view (ViewCollection), its
// counters (CountsCollection) and its open orders (OpenCollection), in time
// that does not grow with the history: an order is a few finds by _id, the
// summary a read of one small document per writer, the stuck orders a read
// of the orders in flight. Reader, which folds the records, stays the source
// of an order's per-line detail and history.
type ViewReader struct {
	view, counts, open *mongo.Collection
	// DeliveryEnabled says that a routed order with external lines is not
	// final until delivered.
	DeliveryEnabled bool
}

// NewViewReader returns a reader of the view in db.
func NewViewReader(db *mongo.Database, deliveryEnabled bool) *ViewReader {
	return &ViewReader{view: db.Collection(ViewCollection), counts: db.Collection(CountsCollection),
		open: db.Collection(OpenCollection), DeliveryEnabled: deliveryEnabled}
}

// Reached reports whether order id has reached status st, by one find by
// _id of its view document: the cheapest question the view answers.
func (r *ViewReader) Reached(ctx context.Context, id int64, st Status) (bool, error) {
	err := r.view.FindOne(ctx, bson.D{{Key: "_id", Value: strconv.FormatInt(id, 10) + "-" + string(st)}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read order %d from %s: %w", id, ViewCollection, err)
	}
	return true, nil
}

// viewStatuses are the statuses an order can have a view document for.
var viewStatuses = []Status{Generated, Validated, Enriched, Routed, Delivered, Failed, Rejected}

// Orders returns the given orders' current statuses, in the order asked,
// leaving out those the view does not hold. Each costs one find by _id per
// status.
func (r *ViewReader) Orders(ctx context.Context, ids ...int64) ([]*Order, error) {
	var out []*Order
	for _, id := range ids {
		o, err := currentFromView(ctx, r.view, id, r.DeliveryEnabled)
		if err != nil {
			return nil, err
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out, nil
}

// currentFromView reads order id's documents by _id. Its current status is
// that of the last inserted: the latest time, and within one insert (one
// time) the later step.
func currentFromView(ctx context.Context, coll *mongo.Collection, id int64, deliveryEnabled bool) (*Order, error) {
	var cur *ViewEntry
	o := &Order{ID: id}
	for _, st := range viewStatuses {
		var e ViewEntry
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: strconv.FormatInt(id, 10) + "-" + string(st)}}).Decode(&e)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read order %d from %s: %w", id, ViewCollection, err)
		}
		if o.FirstSeen.IsZero() || e.Time.Before(o.FirstSeen) {
			o.FirstSeen = e.Time
		}
		if e.Time.After(o.LastSeen) {
			o.LastSeen = e.Time
		}
		o.Lines = max(o.Lines, e.Lines)
		if cur == nil || e.Time.After(cur.Time) || (e.Time.Equal(cur.Time) && e.Step > cur.Step) {
			cur = &e
		}
	}
	if cur == nil {
		return nil, nil
	}
	o.Status, o.Reason = cur.Status, cur.Reason
	switch cur.Status {
	case Delivered, Rejected, Failed:
		o.Final = true
	case Routed:
		o.Final = !deliveryEnabled || !cur.External
	}
	return o, nil
}

// Summary counts the orders per status from the view's counters.
//
// Lines are counted per order, as the view knows them: LinesByStage counts
// the lines of the orders that reached each stage, LinesFailed the lines of
// failed orders. An order that failed and was then replayed to completion
// still counts as failed here (the view keeps both documents; `find` shows
// the later one last).
func (r *ViewReader) Summary(ctx context.Context) (Summary, error) {
	docs, err := readCounts(ctx, r.counts)
	if err != nil {
		return Summary{}, err
	}
	var total viewCounts
	for _, d := range docs {
		total.add(d.counts())
	}
	return summarize(total, r.DeliveryEnabled), nil
}

// Stuck returns up to limit orders, by id, that entered the view more than
// olderThan ago and are not final, and how many open orders are that old
// (which may still count a few final ones whose entry a crash left behind,
// until the View removes it).
func (r *ViewReader) Stuck(ctx context.Context, olderThan time.Duration, limit int) ([]*Order, int, error) {
	entries, err := readOpen(ctx, r.open)
	if err != nil {
		return nil, 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	entries = slices.DeleteFunc(entries, func(e openEntry) bool { return e.Since.After(cutoff) })
	slices.SortFunc(entries, func(a, b openEntry) int { return int(min(max(a.OrderID-b.OrderID, -1), 1)) })
	var out []*Order
	total := len(entries)
	for _, e := range entries {
		if len(out) >= limit {
			break
		}
		o, err := currentFromView(ctx, r.view, e.OrderID, r.DeliveryEnabled)
		if err != nil {
			return nil, 0, err
		}
		if o == nil || o.Final {
			total--
			continue
		}
		out = append(out, o)
	}
	return out, total, nil
}

func readOpen(ctx context.Context, coll *mongo.Collection) ([]openEntry, error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", OpenCollection, err)
	}
	var out []openEntry
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read %s: %w", OpenCollection, err)
	}
	return out, nil
}

// upkeepInterval is how often a View settles the intents that writers left
// behind and removes final orders from OpenCollection.
const upkeepInterval = 30 * time.Second

// upkeep settles the intents older than ViewConfig.SettleAfter and removes
// the entries of final orders, at most 200 per call, from
// OpenCollection: both are left behind only by a writer stopped midway.
func (v *View) upkeep(ctx context.Context) error {
	err := v.recoverCounts(ctx, v.cfg.SettleAfter)
	entries, rerr := readOpen(ctx, v.open)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	checked := 0
	for _, e := range entries {
		if time.Since(e.Since) < time.Minute || checked >= 200 {
			continue
		}
		checked++
		o, cerr := currentFromView(ctx, v.coll, e.OrderID, v.cfg.DeliveryEnabled)
		if cerr != nil {
			return errors.Join(err, cerr)
		}
		if o != nil && o.Final {
			if _, derr := v.open.DeleteOne(ctx, bson.D{{Key: "_id", Value: e.ID}}); derr != nil {
				return errors.Join(err, fmt.Errorf("remove final order %d from %s: %w", e.OrderID, OpenCollection, derr))
			}
		}
	}
	return err
}

// CompareReads checks the view's fast reads against orders (the truth, from
// the records): each order's current status and finality, the summary's
// counts, and the stuck list (with olderThan 0, the orders not final). It
// returns one line per disagreement.
func CompareReads(ctx context.Context, db *mongo.Database, orders []*Order, deliveryEnabled bool) ([]string, error) {
	r := NewViewReader(db, deliveryEnabled)
	var problems []string
	for _, o := range orders {
		if o.Status == Pending {
			continue
		}
		got, err := r.Orders(ctx, o.ID)
		if err != nil {
			return nil, err
		}
		switch {
		case len(got) == 0:
			problems = append(problems, fmt.Sprintf("order %d: %s, but the view has no status", o.ID, o.Status))
		case got[0].Status != o.Status || got[0].Final != o.Final:
			problems = append(problems, fmt.Sprintf("order %d: %s (final %v), but the view reads %s (final %v)",
				o.ID, o.Status, o.Final, got[0].Status, got[0].Final))
		}
	}
	want := Summarize(orders)
	got, err := r.Summary(ctx)
	if err != nil {
		return nil, err
	}
	// An open order's documents count the lines seen when it was inserted.
	if slices.ContainsFunc(orders, func(o *Order) bool { return o.Open }) {
		got.LinesRejected = want.LinesRejected
	}
	if got.Orders != want.Orders-want.ByStatus[Pending] || got.NotFinal != want.NotFinal-want.ByStatus[Pending] || got.LinesRejected != want.LinesRejected {
		problems = append(problems, fmt.Sprintf("summary: %d orders, %d not final, %d lines rejected; the records give %d, %d, %d",
			got.Orders, got.NotFinal, got.LinesRejected, want.Orders-want.ByStatus[Pending], want.NotFinal-want.ByStatus[Pending], want.LinesRejected))
	}
	for _, st := range All {
		if st != Pending && got.ByStatus[st] != want.ByStatus[st] {
			problems = append(problems, fmt.Sprintf("summary: %d orders %s; the records give %d", got.ByStatus[st], st, want.ByStatus[st]))
		}
	}
	stuck, _, err := r.Stuck(ctx, 0, len(orders)+1)
	if err != nil {
		return nil, err
	}
	if n := want.NotFinal - want.ByStatus[Pending]; len(stuck) != n {
		problems = append(problems, fmt.Sprintf("stuck: %d orders not final; the records give %d", len(stuck), n))
	}
	return problems, nil
}

// WaitReads waits until CompareReads finds nothing or ctx ends, and returns
// what it found last. Counts left by a writer killed midway are settled by a
// running View within ViewConfig.SettleAfter and a few seconds (see
// View.upkeep).
func WaitReads(ctx context.Context, db *mongo.Database, orders []*Order, deliveryEnabled bool) ([]string, error) {
	wrong := []string{"no comparison finished in time"}
	for {
		now, err := CompareReads(ctx, db, orders, deliveryEnabled)
		if err != nil && ctx.Err() != nil {
			return wrong, nil // out of time midway: the last full comparison stands
		}
		if err != nil || len(now) == 0 {
			return now, err
		}
		wrong = now
		select {
		case <-ctx.Done():
			return wrong, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
