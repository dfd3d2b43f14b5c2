// Package aggcheck recounts the shipped aggregations independently, from
// the raw topics, and compares the results in MongoDB with the recount. The
// integration tests and the fault suite use it: a copy of a line on a topic
// (an upstream redelivery) must not count twice, so the recount counts each
// line id once, and the product must agree.
package aggcheck

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/order"
)

// Result is one comparison.
type Result struct {
	// Orders and Locations are the groups recounted; Copies the lines
	// seen more than once on the input topics (each copy once).
	Orders, Locations, Copies int
	// Wrong lists each disagreement.
	Wrong []string
}

type lineID struct {
	order int64
	line  int
}

type orderCount struct {
	cents     int64
	lines     int
	lineCount int
}

// Recount reads enriched_order_details and internal_routed_order and
// counts every line id once: order totals in cents with their lines, and
// lines per destination.
func Recount(t testing.TB, brokers []string) (orders map[int64]orderCount, locations map[int64]int64, copies int) {
	t.Helper()
	orders, locations = map[int64]orderCount{}, map[int64]int64{}
	copies = distinctLines(t, brokers, "enriched_order_details", func(l order.Line) {
		c := orders[l.OrderID]
		c.cents += int64(math.Round(l.ProductPrice * 100))
		c.lines++
		c.lineCount = l.LineCount
		orders[l.OrderID] = c
	})
	copies += distinctLines(t, brokers, "internal_routed_order", func(l order.Line) { locations[l.ToLocation]++ })
	return orders, locations, copies
}

// distinctLines calls each with the first copy of every line of a topic,
// and returns how many copies it left out.
func distinctLines(t testing.TB, brokers []string, topic string, each func(order.Line)) (copies int) {
	t.Helper()
	seen := map[lineID]bool{}
	for _, r := range testenv.ReadTopic(t, brokers, topic) {
		l, err := order.DecodeLine(r.Value)
		if err != nil {
			continue
		}
		id := lineID{l.OrderID, l.Ident()}
		if seen[id] {
			copies++
			continue
		}
		seen[id] = true
		each(l)
	}
	return copies
}

// Compare reads the order_price and location_product_count collections and
// compares them with a recount.
func Compare(ctx context.Context, t testing.TB, brokers []string, db *mongo.Database) Result {
	t.Helper()
	orders, locations, copies := Recount(t, brokers)
	res := Result{Orders: len(orders), Locations: len(locations), Copies: copies}
	var prices []struct {
		OrderID  int64   `bson:"order_id"`
		Cents    int64   `bson:"total_amount_cents"`
		Amount   float64 `bson:"total_amount"`
		Lines    int     `bson:"lines"`
		Complete bool    `bson:"complete"`
	}
	if err := findAll(ctx, db.Collection("order_price"), &prices); err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for _, p := range prices {
		got[p.OrderID] = true
		want, ok := orders[p.OrderID]
		switch {
		case !ok:
			res.Wrong = append(res.Wrong, fmt.Sprintf("order_price has order %d, which no line of enriched_order_details has", p.OrderID))
		case p.Cents != want.cents || p.Lines != want.lines:
			res.Wrong = append(res.Wrong, fmt.Sprintf("order %d: order_price says %d cents in %d lines, the recount %d cents in %d lines", p.OrderID, p.Cents, p.Lines, want.cents, want.lines))
		case p.Amount != float64(want.cents)/100: // the double nearest the exact decimal
			res.Wrong = append(res.Wrong, fmt.Sprintf("order %d: total_amount %v is not %d cents", p.OrderID, p.Amount, want.cents))
		case p.Complete != (want.lines == want.lineCount):
			res.Wrong = append(res.Wrong, fmt.Sprintf("order %d: complete is %v with %d of %d lines", p.OrderID, p.Complete, want.lines, want.lineCount))
		}
	}
	for id, c := range orders {
		if !got[id] && c.lines == c.lineCount {
			res.Wrong = append(res.Wrong, fmt.Sprintf("order %d: every line counted by the recount, none in order_price", id))
		}
	}
	var counts []struct {
		ToLocation int64  `bson:"to_location"`
		Name       string `bson:"to_location_name"`
		Total      int64  `bson:"total_product"`
	}
	if err := findAll(ctx, db.Collection("location_product_count"), &counts); err != nil {
		t.Fatal(err)
	}
	have := map[int64]int64{}
	for _, c := range counts {
		have[c.ToLocation] = c.Total
		if c.Name == "" {
			res.Wrong = append(res.Wrong, fmt.Sprintf("location %d has no to_location_name", c.ToLocation))
		}
	}
	both := maps.Clone(locations)
	maps.Copy(both, have)
	for _, loc := range slices.Sorted(maps.Keys(both)) {
		if have[loc] != locations[loc] {
			res.Wrong = append(res.Wrong, fmt.Sprintf("location %d: location_product_count says %d lines, the recount %d", loc, have[loc], locations[loc]))
		}
	}
	slices.Sort(res.Wrong)
	return res
}

// Wait compares until the collections agree with the recount or ctx ends,
// and returns the last comparison.
func Wait(ctx context.Context, t testing.TB, brokers []string, db *mongo.Database) Result {
	t.Helper()
	for {
		res := Compare(ctx, t, brokers, db)
		if len(res.Wrong) == 0 || ctx.Err() != nil {
			return res
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(time.Second):
		}
	}
}

func findAll(ctx context.Context, coll *mongo.Collection, out any) error {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	if err := cur.All(ctx, out); err != nil {
		return fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	return nil
}
