package handlers

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/order"
)

// memMeta answers lookups from a snapshot; err, when set, is what a failed
// refresh reports.
type memMeta struct {
	snap *metastore.Snapshot
	err  error
}

func (m memMeta) IsFraud(ip string) bool { return m.snap.IsFraud(ip) }
func (m memMeta) LocationName(_ context.Context, id int64) (string, bool, error) {
	n, ok := m.snap.LocationName(id)
	if !ok && m.err != nil {
		return "", false, m.err
	}
	return n, ok, nil
}
func (m memMeta) Product(_ context.Context, id int64) (metastore.Product, bool, error) {
	p, ok := m.snap.Product(id)
	if !ok && m.err != nil {
		return p, false, m.err
	}
	return p, ok, nil
}

var meta = memMeta{snap: metastore.NewSnapshot(
	[]string{"6.6.6.6"},
	[]metastore.Location{{LocationID: 1, Name: "Morris Park Bake Shop"}, {LocationID: 2, Name: "Wendy'S"}},
	[]metastore.Product{
		{ProductID: 1000, ProductName: "skimpy-indigo-frigatebird", RouteID: 1, Category: "Grocery"},
		{ProductID: 1003, ProductName: "cloudy-cobalt-shrimp", RouteID: 2, Category: "Furniture"},
		{ProductID: 1004, ProductName: "foggy-orange-mouse", RouteID: 3, Category: "Toys"},
	})}

func line(idx int, products ...int64) order.Line {
	return order.Line{
		OrderID: 7, Time: "2026-11-24T10:00:00.000000Z", IPAddress: "1.2.3.4", ProductID: products[idx],
		OrderQty: 1, FromLocation: 1, ToLocation: 2, UnitOfMeasures: 1, UOMType: "E", ProductPrice: 10,
		LineIndex: idx, LineCount: len(products), OrderProductIDs: products,
	}
}

func TestValidate(t *testing.T) {
	v := Validate(meta)
	l := line(0, 1000)
	out, err := v(context.Background(), l)
	if err != nil || out.Rejected != "" || out.Line.IPAddress != l.IPAddress {
		t.Fatalf("clean line: %+v %v", out, err)
	}
	l.IPAddress = "6.6.6.6"
	out, err = v(context.Background(), l)
	if err != nil || !strings.Contains(out.Rejected, "6.6.6.6 is on the fraud list") {
		t.Fatalf("fraud line: %+v %v", out, err)
	}
}

func TestEnrich(t *testing.T) {
	e := Enrich(meta)
	out, err := e(context.Background(), line(0, 1000))
	if err != nil || out.Line.FromLocationName != "Morris Park Bake Shop" || out.Line.ToLocationName != "Wendy'S" {
		t.Fatalf("%+v %v", out, err)
	}
	// An unknown location is a permanent error naming it.
	l := line(0, 1000)
	l.ToLocation = 99
	_, err = e(context.Background(), l)
	if k, ok := failure.PermanentKind(err); !ok || k != failure.UnknownReference || !strings.Contains(err.Error(), "to_location 99") {
		t.Fatalf("unknown location: %v", err)
	}
	// Metadata that cannot be read is not the line's fault.
	down := memMeta{snap: meta.snap, err: failure.Unavailable(errors.New("mongo down"))}
	_, err = Enrich(down)(context.Background(), l)
	if _, perm := failure.PermanentKind(err); perm || !failure.IsUnavailable(err) {
		t.Fatalf("refresh failure classified as %v", err)
	}
}

func TestRoute(t *testing.T) {
	r := Route(meta)
	// Lines 0 (route 1) internal, 1 and 2 (routes 2, 3) external.
	products := []int64{1000, 1003, 1004}
	for idx, want := range []string{order.RouteInternal, order.RouteExternal, order.RouteExternal} {
		out, err := r(context.Background(), line(idx, products...))
		if err != nil {
			t.Fatal(err)
		}
		if out.Route != want || out.Line.Route != want || len(out.Line.ExternalLines) != 2 ||
			out.Line.ExternalLines[0] != 1 || out.Line.ExternalLines[1] != 2 {
			t.Fatalf("line %d: %+v", idx, out.Line)
		}
		p, _ := meta.snap.Product(products[idx])
		if out.Line.RouteID != p.RouteID || out.Line.ProductName != p.ProductName || out.Line.Category != p.Category {
			t.Fatalf("line %d product fields %+v", idx, out.Line)
		}
	}
	_, err := r(context.Background(), line(0, 4242))
	if k, ok := failure.PermanentKind(err); !ok || k != failure.UnknownReference {
		t.Fatalf("unknown product: %v", err)
	}
	// A sibling with an unknown product is not waited for.
	out, err := r(context.Background(), line(1, 4242, 1003))
	if err != nil || len(out.Line.ExternalLines) != 1 || out.Line.ExternalLines[0] != 1 {
		t.Fatalf("unknown sibling: %+v %v", out.Line, err)
	}
}

func TestRegistryKindsBuild(t *testing.T) {
	deps := Deps{Fraud: meta, Locations: meta, Products: meta, Status: &memStatus{},
		Counter: func(config.HandlerConfig) (Counter, error) { return countNothing{}, nil }}
	for name, k := range Registry {
		if _, err := k.New(deps); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if k.Doc == "" {
			t.Errorf("%s has no doc", name)
		}
	}
}

type countNothing struct{}

func (countNothing) Add(context.Context, int32, int64, context.Context, order.Line) error { return nil }
