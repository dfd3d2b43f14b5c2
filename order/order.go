// Package order is the order model: an order with its products, the per-product
// lines that travel through the pipeline, random generation of orders and the
// strict decoder every stage uses to read a line.
package order

import (
	"strconv"
	"time"
)

// TimeLayout is the wire format of an order's time: RFC 3339 in UTC with
// microseconds, which is what the original pipeline produced.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// UOM types an order product may have.
var uomTypes = []string{"E", "M", "F"}

// Limits of a valid order product. The decoder rejects lines outside them, so
// that an absurd quantity or price is reported instead of being routed.
const (
	MinProducts       = 1
	MaxProducts       = 4
	MinQty            = 1
	MaxQty            = 10
	MinUnitOfMeasures = 1
	MaxUnitOfMeasures = 15
	MinPrice          = 10.0
	MaxPrice          = 5000.0
)

// Order is one customer order as generated, before it is flattened.
type Order struct {
	ID        int64     `json:"order_id"`
	Time      string    `json:"time"`
	IPAddress string    `json:"ip_address"`
	Products  []Product `json:"products"`
}

// Product is one product entry of an order.
type Product struct {
	ProductID      int64   `json:"product_id"`
	OrderQty       int     `json:"order_qty"`
	FromLocation   int64   `json:"from_location"`
	ToLocation     int64   `json:"to_location"`
	UnitOfMeasures int     `json:"unit_of_measures"`
	UOMType        string  `json:"uom_type"`
	ProductPrice   float64 `json:"product_price"`
}

// Route names the two destinations the route stage chooses between.
const (
	RouteInternal = "internal"
	RouteExternal = "external"
)

// Line is one product of an order together with the order's own fields. It is
// the unit every stage consumes and publishes. Fields after LineCount are
// added by later stages and are empty before them.
type Line struct {
	OrderID   int64  `json:"order_id"`
	Time      string `json:"time"`
	IPAddress string `json:"ip_address"`

	ProductID      int64   `json:"product_id"`
	OrderQty       int     `json:"order_qty"`
	FromLocation   int64   `json:"from_location"`
	ToLocation     int64   `json:"to_location"`
	UnitOfMeasures int     `json:"unit_of_measures"`
	UOMType        string  `json:"uom_type"`
	ProductPrice   float64 `json:"product_price"`

	// LineIndex is the position of this line within its order, from 0.
	LineIndex int `json:"line_index"`
	// LineCount is the number of lines of the order.
	LineCount int `json:"line_count"`
	// OrderProductIDs lists the product of every line of the order, so that a
	// stage holding one line knows the whole order's composition. The delivery
	// stage needs it to know how many lines to wait for.
	OrderProductIDs []int64 `json:"order_product_ids"`

	// Set by enrich.
	FromLocationName string `json:"from_location_name,omitempty"`
	ToLocationName   string `json:"to_location_name,omitempty"`

	// Set by route.
	RouteID     int    `json:"route_id,omitempty"`
	Route       string `json:"route,omitempty"`
	ProductName string `json:"product_name,omitempty"`
	Category    string `json:"category,omitempty"`
	// ExternalLines lists the indexes of the order's lines that go external.
	ExternalLines []int `json:"external_lines,omitempty"`
}

// Open reports a line in the original system's format: no line_index,
// line_count or order_product_ids, so it does not say how many lines its
// order has. Such a line is known by its order id and product id (see
// Ident): two lines of one order with the same product are one line, the
// second taken for a redelivery of the first. The order is tracked over the
// lines seen and is final once they all are and no new one came for a quiet
// period (status.Reader.OpenQuiet).
func (l Line) Open() bool { return l.LineCount == 0 }

// Ident identifies the line within its order: its index, or for an open
// line its product id.
func (l Line) Ident() int {
	if l.Open() {
		return int(l.ProductID)
	}
	return l.LineIndex
}

// Key is the Kafka key of the line: the order id, so that all lines of an
// order land on one partition, in order.
func (l Line) Key() string { return strconv.FormatInt(l.OrderID, 10) }

// Flatten turns an order into one line per product, in product order.
func Flatten(o Order) []Line {
	ids := make([]int64, len(o.Products))
	for i, p := range o.Products {
		ids[i] = p.ProductID
	}
	lines := make([]Line, len(o.Products))
	for i, p := range o.Products {
		lines[i] = Line{
			OrderID:         o.ID,
			Time:            o.Time,
			IPAddress:       o.IPAddress,
			ProductID:       p.ProductID,
			OrderQty:        p.OrderQty,
			FromLocation:    p.FromLocation,
			ToLocation:      p.ToLocation,
			UnitOfMeasures:  p.UnitOfMeasures,
			UOMType:         p.UOMType,
			ProductPrice:    p.ProductPrice,
			LineIndex:       i,
			LineCount:       len(o.Products),
			OrderProductIDs: ids,
		}
	}
	return lines
}

// zonelessLayout is the original system's time: Python's isoformat() of a
// naive datetime, without a zone.
const zonelessLayout = "2006-01-02T15:04:05.999999999"

// ParseTime reads an order's time: RFC 3339, or the original system's time
// without a zone, which is read as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t, nil
	}
	if t, zerr := time.ParseInLocation(zonelessLayout, s, time.UTC); zerr == nil {
		return t, nil
	}
	return time.Time{}, err
}

// FormatTime renders t in the wire format of an order's time.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }
