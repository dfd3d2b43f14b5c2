package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/status"
)

// ReadFigures time the status reads users make, on a database holding
// Orders orders: one order's status (CLI `orderflow status N`,
// /orders/{id}), the summary (CLI `orderflow status`, /summary, the
// dashboard) and the stuck orders (/stuck). Each is the median of repeated
// reads, with the slowest one-order read beside it.
type ReadFigures struct {
	Orders     int     `json:"orders"`
	OrderP50ms float64 `json:"one_order_p50_ms"`
	OrderMaxms float64 `json:"one_order_max_ms"`
	SummaryMs  float64 `json:"summary_ms"`
	StuckMs    float64 `json:"stuck_ms"`
}

// measureReads times the reads of the view in db, sampling one-order reads
// among ids.
func measureReads(ctx context.Context, db *mongo.Database, orders int, ids []int64) (ReadFigures, error) {
	r := status.NewViewReader(db, false)
	fig := ReadFigures{Orders: orders}
	rng := rand.New(rand.NewPCG(1, 2))
	var one []float64
	for range 200 {
		id := ids[rng.IntN(len(ids))]
		start := time.Now()
		got, err := r.Orders(ctx, id)
		if err != nil {
			return fig, err
		}
		if len(got) != 1 {
			return fig, fmt.Errorf("order %d: not in order_status", id)
		}
		one = append(one, ms(time.Since(start)))
	}
	slices.Sort(one)
	fig.OrderP50ms, fig.OrderMaxms = percentile(one, 0.5), one[len(one)-1]
	var sum, stuck []float64
	for range 21 {
		start := time.Now()
		if _, err := r.Summary(ctx); err != nil {
			return fig, err
		}
		sum = append(sum, ms(time.Since(start)))
		start = time.Now()
		if _, _, err := r.Stuck(ctx, 5*time.Minute, 100); err != nil {
			return fig, err
		}
		stuck = append(stuck, ms(time.Since(start)))
	}
	slices.Sort(sum)
	slices.Sort(stuck)
	fig.SummaryMs, fig.StuckMs = percentile(sum, 0.5), percentile(stuck, 0.5)
	return fig, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// growView adds orders to the view of db, up to total orders, with ids from
// first on: each a routed document, as the view holds for a finished order
// (a real order also has one document per earlier stage; the reads go by
// _id, whose index makes the collection's size irrelevant to them). It
// returns the ids added.
func growView(ctx context.Context, db *mongo.Database, first int64, n int) ([]int64, error) {
	coll := db.Collection(status.ViewCollection)
	now := time.Now()
	ids := make([]int64, 0, n)
	const batch = 1000
	docs := make([]any, 0, batch)
	for i := range n {
		id := first + int64(i)
		ids = append(ids, id)
		docs = append(docs, status.ViewEntry{ID: strconv.FormatInt(id, 10) + "-routed", OrderID: id, Status: status.Routed,
			Step: status.Routed.Rank(), Time: now, Lines: 2, WriteID: "bench"})
		if len(docs) == batch || i == n-1 {
			if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
				return nil, fmt.Errorf("grow %s: %w", status.ViewCollection, err)
			}
			docs = docs[:0]
		}
	}
	return ids, nil
}
