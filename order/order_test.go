package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleLine() Line {
	return Line{
		OrderID: 11103, Time: "2020-06-29T02:38:55.166689Z", IPAddress: "150.50.115.62",
		ProductID: 1215, OrderQty: 6, FromLocation: 43, ToLocation: 80, UnitOfMeasures: 2,
		UOMType: "E", ProductPrice: 1208.5, LineIndex: 1, LineCount: 3,
		OrderProductIDs: []int64{1001, 1215, 1300},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	base := sampleLine()
	enriched := base
	enriched.FromLocationName, enriched.ToLocationName = `Wendy's "Place" <é>`, "Riviera Caterer"
	routed := enriched
	routed.RouteID, routed.Route, routed.ProductName, routed.Category = 2, RouteExternal, "foggy-orange-mouse", "Furniture"
	routed.ExternalLines = []int{1, 2}

	for _, l := range []Line{base, enriched, routed} {
		data := Encode(l)
		got, err := DecodeLine(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, l) {
			t.Fatalf("round trip changed the line:\n got %+v\nwant %+v", got, l)
		}
		// encoding/json reads the same line from our bytes.
		var std Line
		if err := json.Unmarshal(data, &std); err != nil || !reflect.DeepEqual(std, l) {
			t.Fatalf("encoding/json disagrees: %v %+v", err, std)
		}
	}
}

func TestDecodeLineRejectsBadInput(t *testing.T) {
	good := string(Encode(sampleLine()))
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("sample has no %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := []struct {
		name, payload, field, problem string
	}{
		{"empty", "", "", "empty payload"},
		{"whitespace", "  \n", "", "empty payload"},
		{"malformed", `{"order_id": 1,`, "", "malformed JSON"},
		{"not an object", `[1,2]`, "", "not a JSON object"},
		{"trailing", good + `{}`, "", "trailing data"},
		{"missing field", replace(`"ip_address":"150.50.115.62",`, ""), "ip_address", "missing required field"},
		{"wrong type", replace(`"order_qty":6`, `"order_qty":"6"`), "order_qty", "expected a number, got a string"},
		{"float id", replace(`"order_id":11103`, `"order_id":11103.5`), "order_id", "expected an integer"},
		{"negative qty", replace(`"order_qty":6`, `"order_qty":-3`), "order_qty", "outside"},
		{"absurd qty", replace(`"order_qty":6`, `"order_qty":1000000`), "order_qty", "outside"},
		{"negative price", replace(`"product_price":1208.5`, `"product_price":-1`), "product_price", "outside"},
		{"absurd price", replace(`"product_price":1208.5`, `"product_price":1e300`), "product_price", "outside"},
		{"huge number", replace(`"order_id":11103`, `"order_id":123456789012345678901234567890`), "order_id", "out of range"},
		{"invalid ip", replace(`"150.50.115.62"`, `"999.1.1.1"`), "ip_address", "not an IPv4"},
		{"ipv6", replace(`"150.50.115.62"`, `"::1"`), "ip_address", "not an IPv4"},
		{"padded ip", replace(`"150.50.115.62"`, `" 150.50.115.62"`), "ip_address", "not an IPv4"},
		{"operator as ip", replace(`"150.50.115.62"`, `{"$ne": null}`), "ip_address", "expected a string, got an object"},
		{"array as ip", replace(`"150.50.115.62"`, `["150.50.115.62"]`), "ip_address", "expected a string, got an array"},
		{"null ip", replace(`"150.50.115.62"`, `null`), "ip_address", "must not be null"},
		{"unknown field", replace(`{`, `{"$where":"1",`), "$where", "unknown field"},
		{"case folded key", replace(`"ip_address"`, `"IP_ADDRESS"`), "IP_ADDRESS", "unknown field"},
		{"duplicate key", replace(`{`, `{"ip_address":"1.2.3.4",`), "ip_address", "duplicate field"},
		{"bad time", replace(`"2020-06-29T02:38:55.166689Z"`, `"yesterday"`), "time", "RFC 3339"},
		{"bad uom", replace(`"uom_type":"E"`, `"uom_type":"X"`), "uom_type", "not one of"},
		{"index past count", replace(`"line_index":1`, `"line_index":3`), "line_index", "outside"},
		{"manifest mismatch", replace(`[1001,1215,1300]`, `[1001,1216,1300]`), "order_product_ids", "not this line's product"},
		{"too many lines", replace(`[1001,1215,1300]`, `[1,1215,3,4,5]`), "order_product_ids", "more than 4"},
		{"control char", replace(`"E"`, "\"E\x01\""), "uom_type", "control character"},
		{"oversized", `{"category":"` + strings.Repeat("x", MaxLineBytes) + `"}`, "", "exceeds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeLine([]byte(tc.payload))
			var inv *InvalidLineError
			if !errors.As(err, &inv) {
				t.Fatalf("got %v, want an InvalidLineError", err)
			}
			if inv.Field != tc.field || !strings.Contains(inv.Problem, tc.problem) {
				t.Fatalf("got field %q problem %q, want field %q problem containing %q", inv.Field, inv.Problem, tc.field, tc.problem)
			}
		})
	}
}

func TestFlatten(t *testing.T) {
	o := Order{ID: 7, Time: "2026-01-02T03:04:05.000006Z", IPAddress: "1.2.3.4", Products: []Product{
		{ProductID: 1000, OrderQty: 1, FromLocation: 1, ToLocation: 2, UnitOfMeasures: 3, UOMType: "E", ProductPrice: 10},
		{ProductID: 1001, OrderQty: 2, FromLocation: 3, ToLocation: 4, UnitOfMeasures: 5, UOMType: "F", ProductPrice: 20.5},
	}}
	lines := Flatten(o)
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	for i, l := range lines {
		p := o.Products[i]
		if l.OrderID != 7 || l.Time != o.Time || l.IPAddress != o.IPAddress || l.LineIndex != i || l.LineCount != 2 ||
			l.ProductID != p.ProductID || l.OrderQty != p.OrderQty || l.FromLocation != p.FromLocation ||
			l.ToLocation != p.ToLocation || l.UnitOfMeasures != p.UnitOfMeasures || l.UOMType != p.UOMType ||
			l.ProductPrice != p.ProductPrice || !reflect.DeepEqual(l.OrderProductIDs, []int64{1000, 1001}) {
			t.Fatalf("line %d = %+v", i, l)
		}
		if l.Key() != "7" {
			t.Fatalf("key %q", l.Key())
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("flattened line is invalid: %v", err)
		}
	}
}

func TestGeneratorProducesValidOrders(t *testing.T) {
	fraud := []string{"66.66.66.1", "66.66.66.2"}
	g, err := NewGenerator(Catalog{ProductIDs: []int64{1000, 1001, 1002}, LocationIDs: []int64{1, 2, 3}, FraudIPs: fraud}, 0.1, 42)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	fraudCount, seenCounts := 0, map[int]int{}
	for i := range n {
		o := g.Order(int64(i + 1))
		seenCounts[len(o.Products)]++
		if o.IPAddress == fraud[0] || o.IPAddress == fraud[1] {
			fraudCount++
		}
		if _, err := netip.ParseAddr(o.IPAddress); err != nil {
			t.Fatalf("bad ip %q", o.IPAddress)
		}
		for _, p := range o.Products {
			if p.ProductPrice*10 != math.Round(p.ProductPrice*10) {
				t.Fatalf("price %v has more than one decimal", p.ProductPrice)
			}
		}
		for _, l := range Flatten(o) {
			if _, err := DecodeLine(Encode(l)); err != nil {
				t.Fatalf("generated line does not decode: %v", err)
			}
		}
	}
	for k := MinProducts; k <= MaxProducts; k++ {
		if seenCounts[k] == 0 {
			t.Fatalf("no order with %d products in %d orders: %v", k, n, seenCounts)
		}
	}
	if fraudCount != n/10 {
		t.Fatalf("%d fraud orders in %d, want exactly %d at share 0.1", fraudCount, n, n/10)
	}
}

func TestFraudIDSpreadsTheShare(t *testing.T) {
	for _, share := range []float64{0.03, 0.1, 0.5, 1} {
		// Any window of consecutive ids, wherever it starts, holds the
		// share of fraud ids rounded down or up.
		for _, start := range []int64{1, 17, 1_000_003} {
			for _, n := range []int64{1, 34, 120, 1000} {
				got := 0
				for id := start; id < start+n; id++ {
					if FraudID(id, share) {
						got++
					}
				}
				want := float64(n) * share
				if float64(got) < math.Floor(want) || float64(got) > math.Ceil(want) {
					t.Errorf("share %v, ids %d..%d: %d fraud, want %v rounded", share, start, start+n-1, got, want)
				}
			}
		}
	}
	if FraudID(5, 0) {
		t.Error("share 0 marked an id")
	}
}

func TestGeneratorIsReproducible(t *testing.T) {
	cat := Catalog{ProductIDs: []int64{1, 2}, LocationIDs: []int64{1}}
	a, _ := NewGenerator(cat, 0, 7)
	b, _ := NewGenerator(cat, 0, 7)
	for i := range 100 {
		oa, ob := a.Order(int64(i)), b.Order(int64(i))
		oa.Time, ob.Time = "", ""
		if !reflect.DeepEqual(oa, ob) {
			t.Fatalf("order %d differs", i)
		}
	}
}

func TestNewGeneratorRejectsBadCatalog(t *testing.T) {
	if _, err := NewGenerator(Catalog{LocationIDs: []int64{1}}, 0, 1); err == nil {
		t.Fatal("no error for a catalog without products")
	}
	if _, err := NewGenerator(Catalog{ProductIDs: []int64{1}, LocationIDs: []int64{1}}, 0.1, 1); err == nil {
		t.Fatal("no error for a fraud share without fraud IPs")
	}
}

func TestOriginalFormatLineIsOpen(t *testing.T) {
	// The original system's flattened line, as json.dumps writes it.
	raw := []byte(`{"product_id": 1001, "order_qty": 1, "from_location": 49, "to_location": 98, "unit_of_measures": 5, "uom_type": "M", "product_price": 165.4, "order_id": 11100, "time": "2020-06-30T04:33:34.242637", "ip_address": "128.69.191.226"}`)
	l, err := DecodeLine(raw)
	if err != nil {
		t.Fatalf("original line refused: %v", err)
	}
	if !l.Open() || l.Ident() != 1001 || l.OrderID != 11100 {
		t.Fatalf("open line decoded as %+v", l)
	}
	when, err := ParseTime(l.Time)
	if err != nil || !when.Equal(time.Date(2020, 6, 30, 4, 33, 34, 242637000, time.UTC)) {
		t.Fatalf("zoneless time read as %v %v, want UTC", when, err)
	}
	// It keeps the original's format through the stages.
	enc := Encode(l)
	if bytes.Contains(enc, []byte("line_index")) || bytes.Contains(enc, []byte("order_product_ids")) {
		t.Fatalf("open line encoded with index fields: %s", enc)
	}
	back, err := DecodeLine(enc)
	if err != nil || !back.Open() || back.ProductID != 1001 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	// Some of the index fields but not all is still an error.
	partial := bytes.Replace(raw, []byte(`"order_id"`), []byte(`"line_index": 0, "order_id"`), 1)
	if _, err := DecodeLine(partial); err == nil || !strings.Contains(err.Error(), "line_count") {
		t.Fatalf("a line with line_index but no line_count: %v", err)
	}
	if _, err := DecodeLine(bytes.Replace(raw, []byte("2020-06-30T04:33:34.242637"), []byte("30/06/2020"), 1)); err == nil {
		t.Fatal("a time in neither format was accepted")
	}
}
