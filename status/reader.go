package status

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Order is the derived status of one order.
type Order struct {
	ID     int64  `json:"order_id"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Final says the order will not move on by itself.
	Final bool `json:"final"`
	// Lines is the order's line count, or for an open order the lines
	// seen so far.
	Lines int `json:"lines"`
	// Open marks an order whose lines came in the original system's format,
	// without a line count (see order.Line.Open); their Line in Progress is
	// the product id.
	Open bool `json:"open,omitempty"`
	// Progress is each line's own status.
	Progress []LineState `json:"line_progress"`
	// History lists the records, oldest first; only Orders fills it.
	History []Event `json:"history,omitempty"`
	// FirstSeen and LastSeen are the times of its oldest and newest record.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// LineState is the status of one line of an order.
type LineState struct {
	Line   int    `json:"line"`
	Status Status `json:"status"`
	Route  string `json:"route,omitempty"`
	Reason string `json:"reason,omitempty"`

	reached int // rank of the highest stage reached
}

// Event is one record in an order's history.
type Event struct {
	Line      int       `json:"line"`
	Status    Status    `json:"status"`
	Stage     Status    `json:"stage,omitempty"`
	Time      time.Time `json:"time"`
	Handler   string    `json:"handler,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Output    string    `json:"output,omitempty"`
	Route     string    `json:"route,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Partner   string    `json:"partner,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	// Repeat marks a record of a line and status already recorded: a
	// redelivery. It does not count twice.
	Repeat bool `json:"repeat,omitempty"`
}

// Reader derives order statuses from the stored records.
type Reader struct {
	coll *mongo.Collection
	// DeliveryEnabled says that external lines go on to a delivery stage, so
	// an order with external lines is final only once they are delivered.
	DeliveryEnabled bool
	// OpenQuiet is how long an open order (lines without a line count) must
	// go without a new line before it can be final.
	OpenQuiet time.Duration
}

// NewReader returns a reader over the records in coll.
func NewReader(coll *mongo.Collection, deliveryEnabled bool) *Reader {
	return &Reader{coll: coll, DeliveryEnabled: deliveryEnabled}
}

// Orders returns the given orders with their history, in the order asked;
// an id with no record is left out.
func (r *Reader) Orders(ctx context.Context, ids ...int64) ([]*Order, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	want := make(map[int64]*fold, len(ids))
	for _, id := range ids {
		want[id] = nil
	}
	filter := bson.D{{Key: "orders", Value: bson.D{{Key: "$in", Value: ids}}}}
	err := r.scan(ctx, filter, func(d *batchDoc, rec *recDoc) {
		f, ok := want[rec.OrderID]
		if !ok {
			return
		}
		if f == nil {
			f = &fold{id: rec.OrderID, history: true, quiet: r.OpenQuiet}
			want[rec.OrderID] = f
		}
		f.add(d, rec)
	})
	if err != nil {
		return nil, err
	}
	var out []*Order
	for _, id := range ids {
		if f := want[id]; f != nil {
			out = append(out, f.order(r.DeliveryEnabled))
			want[id] = nil
		}
	}
	return out, nil
}

// Order returns one order with its history, or nil when it has no record.
func (r *Reader) Order(ctx context.Context, id int64) (*Order, error) {
	orders, err := r.Orders(ctx, id)
	if err != nil || len(orders) == 0 {
		return nil, err
	}
	return orders[0], nil
}

// Range returns the orders with ids from first to last that have records,
// by id, without history. It reads only the documents whose order bounds
// overlap the range.
func (r *Reader) Range(ctx context.Context, first, last int64) ([]*Order, error) {
	filter := bson.D{
		{Key: "omax", Value: bson.D{{Key: "$gte", Value: first}}},
		{Key: "omin", Value: bson.D{{Key: "$lte", Value: last}}},
	}
	return r.collect(ctx, filter, func(id int64) bool { return id >= first && id <= last })
}

// CountRecords sums the records of the given statuses in documents touching
// orders first to last. It counts redeliveries again and reads only document
// headers, so it is a cheap progress gauge; Range gives exact counts.
func (r *Reader) CountRecords(ctx context.Context, first, last int64, statuses ...Status) (int, error) {
	return r.count(ctx, first, last, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}})
}

// count sums the records of orders first to last in the documents that
// also match cond.
func (r *Reader) count(ctx context.Context, first, last int64, cond ...bson.E) (int, error) {
	match := append(bson.D(cond),
		bson.E{Key: "omax", Value: bson.D{{Key: "$gte", Value: first}}},
		bson.E{Key: "omin", Value: bson.D{{Key: "$lte", Value: last}}})
	cur, err := r.coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: match}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: nil}, {Key: "n", Value: bson.D{{Key: "$sum", Value: "$n"}}}}}},
	})
	if err != nil {
		return 0, fmt.Errorf("count status records: %w", err)
	}
	defer cur.Close(ctx)
	var out []struct {
		N int `bson:"n"`
	}
	if err := cur.All(ctx, &out); err != nil {
		return 0, fmt.Errorf("count status records: %w", err)
	}
	if len(out) == 0 {
		return 0, nil
	}
	return out[0].N, nil
}

// CountRecordsRouted counts the routed records of orders first to last
// whose route is route ("internal" or "external").
func (r *Reader) CountRecordsRouted(ctx context.Context, first, last int64, route string) (int, error) {
	return r.count(ctx, first, last, bson.E{Key: "status", Value: string(Routed)}, bson.E{Key: "route", Value: route})
}

// LineKey names one line of one order.
type LineKey struct {
	OrderID int64
	Line    int
}

// FirstTimes returns, for every line of orders first to last, the time of
// its earliest record of each status asked, in the order asked (zero when it
// has none).
func (r *Reader) FirstTimes(ctx context.Context, first, last int64, statuses ...Status) (map[LineKey][]time.Time, error) {
	out := map[LineKey][]time.Time{}
	filter := bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}},
		{Key: "omax", Value: bson.D{{Key: "$gte", Value: first}}},
		{Key: "omin", Value: bson.D{{Key: "$lte", Value: last}}},
	}
	err := r.scan(ctx, filter, func(d *batchDoc, rec *recDoc) {
		if rec.OrderID < first || rec.OrderID > last || rec.Line < 0 {
			return
		}
		k := LineKey{rec.OrderID, int(rec.Line)}
		ts := out[k]
		if ts == nil {
			ts = make([]time.Time, len(statuses))
			out[k] = ts
		}
		for i, st := range statuses {
			if st == d.Status && (ts[i].IsZero() || rec.Time.Before(ts[i])) {
				ts[i] = rec.Time
			}
		}
	})
	return out, err
}

// All returns every order, by id, without history.
func (r *Reader) All(ctx context.Context) ([]*Order, error) {
	return r.collect(ctx, bson.D{}, func(int64) bool { return true })
}

func (r *Reader) collect(ctx context.Context, filter bson.D, keep func(int64) bool) ([]*Order, error) {
	folds := map[int64]*fold{}
	err := r.scan(ctx, filter, func(d *batchDoc, rec *recDoc) {
		if !keep(rec.OrderID) {
			return
		}
		f := folds[rec.OrderID]
		if f == nil {
			f = &fold{id: rec.OrderID, quiet: r.OpenQuiet}
			folds[rec.OrderID] = f
		}
		f.add(d, rec)
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Order, 0, len(folds))
	for _, f := range folds {
		out = append(out, f.order(r.DeliveryEnabled))
	}
	slices.SortFunc(out, func(a, b *Order) int { return int(min(max(a.ID-b.ID, -1), 1)) })
	return out, nil
}

// Summary counts orders per status and lines per stage.
type Summary struct {
	Orders   int            `json:"orders"`
	ByStatus map[Status]int `json:"by_status"`
	// LinesByStage counts the distinct lines that reached each stage or a
	// later one.
	LinesByStage map[Status]int `json:"lines_by_stage"`
	// LinesRejected and LinesFailed count lines, where ByStatus counts
	// orders.
	LinesRejected int `json:"lines_rejected"`
	LinesFailed   int `json:"lines_failed"`
	NotFinal      int `json:"not_final"`
}

// Summarize counts orders.
func Summarize(orders []*Order) Summary {
	s := Summary{ByStatus: map[Status]int{}, LinesByStage: map[Status]int{}}
	for _, st := range All {
		s.ByStatus[st] = 0
	}
	for _, st := range Stages {
		s.LinesByStage[st] = 0
	}
	for _, o := range orders {
		s.Orders++
		s.ByStatus[o.Status]++
		if !o.Final {
			s.NotFinal++
		}
		for _, l := range o.Progress {
			switch l.Status {
			case Rejected:
				s.LinesRejected++
			case Failed:
				s.LinesFailed++
			}
		}
	}
	for _, o := range orders {
		for _, l := range o.Progress {
			for _, st := range Stages {
				if l.reached >= st.Rank() {
					s.LinesByStage[st]++
				}
			}
		}
	}
	return s
}

func (r *Reader) scan(ctx context.Context, filter bson.D, fn func(*batchDoc, *recDoc)) error {
	cur, err := r.coll.Find(ctx, filter, options.Find().SetBatchSize(200))
	if err != nil {
		return fmt.Errorf("read order status: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d batchDoc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("read order status: %w", err)
		}
		if err := d.unpack(); err != nil {
			return fmt.Errorf("read order status: %w", err)
		}
		for i := range d.Recs {
			fn(&d, &d.Recs[i])
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read order status: %w", err)
	}
	return nil
}
