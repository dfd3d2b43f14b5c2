package aggregate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/config"
)

// Reader reads the aggregations' results for the CLI, the HTTP API and the
// dashboard. Every read is of small collections (the rollups, one document
// per aggregation and partition; a changes aggregation's groups) or by _id,
// so none grows with the number of orders.
type Reader struct {
	db    *mongo.Database
	specs []readSpec
}

type readSpec struct {
	spec       Spec
	collection string
}

// NewReader returns a reader of the enabled aggregations of cfg.
func NewReader(db *mongo.Database, cfg *config.Config) *Reader {
	r := &Reader{db: db}
	for _, h := range cfg.Handlers {
		if h.Aggregate == nil || !h.IsEnabled() {
			continue
		}
		rs := readSpec{spec: SpecFrom(h.Name, *h.Aggregate), collection: h.Aggregate.Collection}
		r.specs = append(r.specs, rs)
	}
	return r
}

// Names lists the aggregations, in configuration order.
func (r *Reader) Names() []string {
	out := make([]string, len(r.specs))
	for i, s := range r.specs {
		out[i] = s.spec.Name
	}
	return out
}

// View is what a reader sees of one aggregation.
type View struct {
	Name       string `json:"name"`
	Collection string `json:"collection"`
	GroupBy    string `json:"group_by"`
	// Groups is the number of groups begun (orders, for order_price).
	Groups int64 `json:"groups"`
	// Totals sums each measure over every line counted (total_amount:
	// the revenue); PerGroup divides them by Groups (the average order).
	Totals   map[string]float64 `json:"totals"`
	PerGroup map[string]float64 `json:"per_group"`
	// Minutes are the last minutes of line time, oldest first. Groups in
	// a minute are the groups begun in it (for order_price, its orders).
	Minutes []MinuteView `json:"minutes"`
	// Top are the groups with the largest first measure (changes
	// aggregations, whose groups are few), largest first.
	Top []map[string]any `json:"top,omitempty"`
	// Partitions is the number of partitions whose rollup was read.
	Partitions int `json:"partitions"`
}

// MinuteView is one minute of a View.
type MinuteView struct {
	Start  time.Time          `json:"start"`
	Groups int64              `json:"groups"`
	Totals map[string]float64 `json:"totals"`
}

// ErrUnknown is returned for an aggregation that is not configured.
var ErrUnknown = errors.New("no such aggregation")

func (r *Reader) find(name string) (readSpec, error) {
	for _, s := range r.specs {
		if s.spec.Name == name {
			return s, nil
		}
	}
	return readSpec{}, fmt.Errorf("%w: %q (configured: %v)", ErrUnknown, name, r.Names())
}

// View reads an aggregation's rollups and, for a changes aggregation, its
// top groups.
func (r *Reader) View(ctx context.Context, name string, top int) (View, error) {
	rs, err := r.find(name)
	if err != nil {
		return View{}, err
	}
	v := View{Name: name, Collection: rs.collection, GroupBy: rs.spec.GroupBy, Totals: map[string]float64{}, PerGroup: map[string]float64{}}
	cur, err := r.db.Collection(RollupCollection).Find(ctx, bson.D{{Key: "aggregate", Value: name}})
	if err != nil {
		return View{}, fmt.Errorf("read rollups of %s: %w", name, err)
	}
	var docs []struct {
		Rollup Rollup `bson:"rollup"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return View{}, fmt.Errorf("read rollups of %s: %w", name, err)
	}
	v.Partitions = len(docs)
	totals := make([]int64, len(rs.spec.Measures))
	minutes := map[int64]*MinuteRollup{}
	for _, d := range docs {
		v.Groups += d.Rollup.Groups
		addValues(totals, d.Rollup.Values)
		for _, m := range d.Rollup.Minutes {
			sum := minutes[m.Start]
			if sum == nil {
				sum = &MinuteRollup{Start: m.Start, Values: make([]int64, len(totals))}
				minutes[m.Start] = sum
			}
			sum.Groups += m.Groups
			addValues(sum.Values, m.Values)
		}
	}
	v.Totals = r.measures(rs.spec, totals)
	if v.Groups > 0 {
		for k, t := range v.Totals {
			v.PerGroup[k] = float64(int64(t/float64(v.Groups)*100+0.5)) / 100
		}
	}
	v.Minutes = []MinuteView{}
	starts := slices.Sorted(maps.Keys(minutes))
	if len(starts) > RollupMinutes {
		// Each partition keeps its own last minutes: older ones than the
		// newest RollupMinutes may be missing some partitions.
		starts = starts[len(starts)-RollupMinutes:]
	}
	for _, start := range starts {
		m := minutes[start]
		v.Minutes = append(v.Minutes, MinuteView{Start: time.UnixMicro(start).UTC(), Groups: m.Groups, Totals: r.measures(rs.spec, m.Values)})
	}
	if !rs.spec.Complete && top > 0 && len(rs.spec.Measures) > 0 {
		if v.Top, err = r.top(ctx, rs, top); err != nil {
			return View{}, err
		}
	}
	return v, nil
}

func (r *Reader) measures(spec Spec, values []int64) map[string]float64 {
	out := map[string]float64{}
	for i, m := range spec.Measures {
		if i >= len(values) {
			break
		}
		if m.Op == config.OpSum {
			out[m.Name] = Units(values[i], m.Decimals)
		} else {
			out[m.Name] = float64(values[i])
		}
	}
	return out
}

// top returns the groups with the largest first measure. The groups of a
// changes aggregation are few (one per destination), so it reads them all.
func (r *Reader) top(ctx context.Context, rs readSpec, n int) ([]map[string]any, error) {
	measure := rs.spec.Measures[0].Name
	cur, err := r.db.Collection(rs.collection).Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rs.collection, err)
	}
	var docs []bson.M
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read %s: %w", rs.collection, err)
	}
	slices.SortStableFunc(docs, func(a, b bson.M) int {
		if c := cmp.Compare(number(b[measure]), number(a[measure])); c != 0 {
			return c
		}
		return cmp.Compare(fmt.Sprint(a["_id"]), fmt.Sprint(b["_id"])) // ties by key, for a stable order
	})
	out := make([]map[string]any, 0, min(n, len(docs)))
	for _, d := range docs[:min(n, len(docs))] {
		delete(d, "_id")
		out = append(out, d)
	}
	return out, nil
}

// Group reads one group's result by its key (an order id for order_price,
// a location id for location_product_count); nil when there is none.
func (r *Reader) Group(ctx context.Context, name, key string) (map[string]any, error) {
	rs, err := r.find(name)
	if err != nil {
		return nil, err
	}
	var doc bson.M
	err = r.db.Collection(rs.collection).FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", name, key, err)
	}
	delete(doc, "_id")
	return doc, nil
}

func number(v any) float64 {
	switch n := v.(type) {
	case int32:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	}
	return 0
}

func addValues(dst, src []int64) {
	for i := range min(len(dst), len(src)) {
		dst[i] += src[i]
	}
}
