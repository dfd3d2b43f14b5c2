package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/aggregate"
)

// memAggregates is an AggregateSource in memory. A name in broken fails
// its reads.
type memAggregates struct {
	names  []string
	views  map[string]aggregate.View
	groups map[string]map[string]any // by name, then "name/key"
	broken map[string]bool

	mu   sync.Mutex
	tops []int // the top of each View call
}

func (m *memAggregates) Names() []string { return m.names }

func (m *memAggregates) View(_ context.Context, name string, top int) (aggregate.View, error) {
	m.mu.Lock()
	m.tops = append(m.tops, top)
	m.mu.Unlock()
	v, ok := m.views[name]
	switch {
	case !ok:
		return aggregate.View{}, fmt.Errorf("%w: %q", aggregate.ErrUnknown, name)
	case m.broken[name]:
		return aggregate.View{}, errors.New("mongodb: down")
	}
	if len(v.Top) > top {
		v.Top = v.Top[:top]
	}
	return v, nil
}

func (m *memAggregates) Group(_ context.Context, name, key string) (map[string]any, error) {
	if _, ok := m.views[name]; !ok {
		return nil, fmt.Errorf("%w: %q", aggregate.ErrUnknown, name)
	}
	if m.broken[name] {
		return nil, errors.New("mongodb: down")
	}
	return m.groups[name+"/"+key], nil
}

func (m *memAggregates) lastTop() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tops[len(m.tops)-1]
}

func sampleAggregates() *memAggregates {
	minute := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	return &memAggregates{
		names: []string{"order_price", "location_product_count"},
		views: map[string]aggregate.View{
			"order_price": {Name: "order_price", Collection: "order_price", GroupBy: "order_id", Groups: 2,
				Totals:     map[string]float64{"total_amount": 30.5, "lines": 3},
				PerGroup:   map[string]float64{"total_amount": 15.25, "lines": 1.5},
				Minutes:    []aggregate.MinuteView{{Start: minute, Groups: 2, Totals: map[string]float64{"total_amount": 30.5, "lines": 3}}},
				Partitions: 8},
			"location_product_count": {Name: "location_product_count", Collection: "location_product_count", GroupBy: "to_location", Groups: 3,
				Totals: map[string]float64{"total_product": 6}, PerGroup: map[string]float64{"total_product": 2},
				Top: []map[string]any{
					{"to_location": 7, "to_location_name": "Seven", "total_product": 3},
					{"to_location": 8, "to_location_name": "Eight", "total_product": 2},
					{"to_location": 9, "to_location_name": "Nine", "total_product": 1},
				}, Partitions: 8},
		},
		groups: map[string]map[string]any{"order_price/11": {"order_id": 11, "total_amount": 20.5, "lines": 2}},
		broken: map[string]bool{},
	}
}

func startWithAggregates(t *testing.T, aggs AggregateSource) string {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Orders: &memOrders{}, Aggregates: aggs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s.URL()
}

func TestAggregatesAPI(t *testing.T) {
	src := sampleAggregates()
	base := startWithAggregates(t, src)

	var list struct {
		Aggregates []aggregate.View `json:"aggregates"`
	}
	if code := get(t, base+"aggregates?top=2", &list); code != 200 || len(list.Aggregates) != 2 {
		t.Fatalf("GET /aggregates: %d %+v", code, list)
	}
	if got := list.Aggregates[0]; got.Name != "order_price" || got.Groups != 2 || got.Totals["total_amount"] != 30.5 ||
		got.PerGroup["total_amount"] != 15.25 || len(got.Minutes) != 1 || !got.Minutes[0].Start.Equal(src.views["order_price"].Minutes[0].Start) {
		t.Errorf("order_price %+v", got)
	}
	if got := list.Aggregates[1]; got.Name != "location_product_count" || len(got.Top) != 2 || got.Top[0]["to_location_name"] != "Seven" {
		t.Errorf("location_product_count %+v", got)
	}
	if src.lastTop() != 2 {
		t.Errorf("top %d asked of the source, want 2", src.lastTop())
	}

	var v aggregate.View
	if code := get(t, base+"aggregates/location_product_count", &v); code != 200 || len(v.Top) != 3 || src.lastTop() != 10 {
		t.Errorf("GET /aggregates/location_product_count: %d %+v, top %d (want the default 10)", code, v, src.lastTop())
	}
	var g map[string]any
	if code := get(t, base+"aggregates/order_price/11", &g); code != 200 || g["total_amount"] != 20.5 {
		t.Errorf("GET /aggregates/order_price/11: %d %v", code, g)
	}

	src.broken["order_price"] = true
	var e map[string]string
	for url, want := range map[string]int{
		"aggregates?top=x": 400, "aggregates?top=-1": 400, "aggregates?top=201": 400,
		"aggregates/order_price?top=x": 400,
		"aggregates/nope":              404, "aggregates/nope/1": 404,
		"aggregates/location_product_count/99": 404,
		"aggregates":                           503, "aggregates/order_price": 503, "aggregates/order_price/11": 503,
	} {
		e = nil
		if code := get(t, base+url, &e); code != want || e["error"] == "" {
			t.Errorf("GET /%s: %d %v, want %d with an error", url, code, e, want)
		}
	}
	if get(t, base+"aggregates/nope", &e); !strings.Contains(e["error"], "no such aggregation") {
		t.Errorf("unknown aggregation: %v", e)
	}
}

// An empty list is a list, not null: the dashboard reads it as "no
// aggregations". So is a server without aggregations, whose /aggregates is
// not found.
func TestAggregatesAbsent(t *testing.T) {
	base := startWithAggregates(t, &memAggregates{})
	var list map[string][]aggregate.View
	if code := get(t, base+"aggregates", &list); code != 200 || list["aggregates"] == nil || len(list["aggregates"]) != 0 {
		t.Errorf("no aggregations configured: %d %v", code, list)
	}
	base = startWithAggregates(t, nil)
	if code := get(t, base+"aggregates", nil); code != 404 {
		t.Errorf("no aggregation source: GET /aggregates %d, want 404", code)
	}
}
