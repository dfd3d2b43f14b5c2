package status

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// WaitView waits until CompareView finds nothing or ctx ends, and returns
// what it found last: the view trails the records by at most the resolve
// interval (see ViewConfig.ResolveAfter).
func WaitView(ctx context.Context, db *mongo.Database, orders []*Order) ([]string, error) {
	var last []string
	for {
		wrong, err := CompareView(ctx, db, orders)
		if err != nil && ctx.Err() != nil && last != nil {
			// The time ran out during a read: the last full read's
			// disagreements are the answer.
			return last, nil
		}
		if err != nil || len(wrong) == 0 {
			return wrong, err
		}
		last = wrong
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
