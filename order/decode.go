package order

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
)

// MaxLineBytes bounds the size of a line's payload. A normal line is well under
// 1 KiB; anything this large is bad input, and is reported before any parsing.
const MaxLineBytes = 16 << 10

// InvalidLineError says why a payload is not a valid line. Every decode
// failure is one, so callers can treat them all as bad input.
type InvalidLineError struct {
	// Field is the JSON field at fault, or empty when the payload as a whole is.
	Field   string
	Problem string
}

func (e *InvalidLineError) Error() string {
	if e.Field == "" {
		return "invalid line: " + e.Problem
	}
	return "invalid line: " + e.Field + ": " + e.Problem
}

func invalid(field, format string, args ...any) *InvalidLineError {
	return &InvalidLineError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Field indexes; the order matters only for the seen-bitmask.
const (
	fOrderID = iota
	fTime
	fIP
	fProductID
	fQty
	fFrom
	fTo
	fUOM
	fUOMType
	fPrice
	fLineIndex
	fLineCount
	fOrderProducts
	fFromName
	fToName
	fRouteID
	fRoute
	fProductName
	fCategory
	fExternalLines
	numFields
)

var fieldNames = [numFields]string{
	fOrderID:       "order_id",
	fTime:          "time",
	fIP:            "ip_address",
	fProductID:     "product_id",
	fQty:           "order_qty",
	fFrom:          "from_location",
	fTo:            "to_location",
	fUOM:           "unit_of_measures",
	fUOMType:       "uom_type",
	fPrice:         "product_price",
	fLineIndex:     "line_index",
	fLineCount:     "line_count",
	fOrderProducts: "order_product_ids",
	fFromName:      "from_location_name",
	fToName:        "to_location_name",
	fRouteID:       "route_id",
	fRoute:         "route",
	fProductName:   "product_name",
	fCategory:      "category",
	fExternalLines: "external_lines",
}

// requiredFields are the fields every line carries, the original system's.
const requiredFields = 1<<fOrderID | 1<<fTime | 1<<fIP | 1<<fProductID | 1<<fQty | 1<<fFrom |
	1<<fTo | 1<<fUOM | 1<<fUOMType | 1<<fPrice

// indexFields are the fields that place a line in its order. orderflow's
// lines carry all three; the original system's carry none (an open line, see
// Line.Open). Some but not all is an error.
const indexFields = 1<<fLineIndex | 1<<fLineCount | 1<<fOrderProducts

var fieldIndex = func() map[string]int {
	m := make(map[string]int, numFields)
	for i, n := range fieldNames {
		m[n] = i
	}
	return m
}()

// DecodeLine parses and validates one line. It is strict on purpose: keys
// must match exactly (no case folding, no duplicates, no unknown keys), every
// value must have its JSON type, and the values must be within the limits of
// an order. A field value can therefore never smuggle a structure (such as a
// query operator) into a later stage.
func DecodeLine(data []byte) (Line, error) {
	var l Line
	if len(data) > MaxLineBytes {
		return l, invalid("", "payload of %d bytes exceeds the %d-byte limit", len(data), MaxLineBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return l, invalid("", "empty payload")
	}
	p := parser{data: data}
	seen, err := p.object(&l)
	if err != nil {
		return Line{}, err
	}
	need := uint32(requiredFields)
	if seen&indexFields != 0 {
		need |= indexFields
	}
	if missing := need &^ seen; missing != 0 {
		for i := range numFields {
			if missing&(1<<i) != 0 {
				return Line{}, invalid(fieldNames[i], "missing required field")
			}
		}
	}
	if err := l.Validate(); err != nil {
		return Line{}, err
	}
	return l, nil
}

// Validate checks the values of a line against the limits of an order.
func (l *Line) Validate() error {
	switch {
	case l.OrderID <= 0:
		return invalid("order_id", "must be positive, got %d", l.OrderID)
	case l.ProductID <= 0:
		return invalid("product_id", "must be positive, got %d", l.ProductID)
	case l.OrderQty < MinQty || l.OrderQty > MaxQty:
		return invalid("order_qty", "%d is outside %d..%d", l.OrderQty, MinQty, MaxQty)
	case l.FromLocation <= 0:
		return invalid("from_location", "must be positive, got %d", l.FromLocation)
	case l.ToLocation <= 0:
		return invalid("to_location", "must be positive, got %d", l.ToLocation)
	case l.UnitOfMeasures < MinUnitOfMeasures || l.UnitOfMeasures > MaxUnitOfMeasures:
		return invalid("unit_of_measures", "%d is outside %d..%d", l.UnitOfMeasures, MinUnitOfMeasures, MaxUnitOfMeasures)
	case l.UOMType != "E" && l.UOMType != "M" && l.UOMType != "F":
		return invalid("uom_type", "%q is not one of E, M, F", l.UOMType)
	case math.IsNaN(l.ProductPrice) || l.ProductPrice < MinPrice || l.ProductPrice > MaxPrice:
		return invalid("product_price", "%v is outside %v..%v", l.ProductPrice, MinPrice, MaxPrice)
	case l.Open():
		if l.ProductID > math.MaxInt32 {
			return invalid("product_id", "%d is too large for a line without line_index (at most %d)", l.ProductID, math.MaxInt32)
		}
		if l.LineIndex != 0 || len(l.OrderProductIDs) != 0 || len(l.ExternalLines) != 0 {
			return invalid("line_count", "a line without line_count has no line_index, order_product_ids or external_lines")
		}
	case l.LineCount < MinProducts || l.LineCount > MaxProducts:
		return invalid("line_count", "%d is outside %d..%d", l.LineCount, MinProducts, MaxProducts)
	case l.LineIndex < 0 || l.LineIndex >= l.LineCount:
		return invalid("line_index", "%d is outside 0..%d", l.LineIndex, l.LineCount-1)
	case len(l.OrderProductIDs) != l.LineCount:
		return invalid("order_product_ids", "has %d entries for %d lines", len(l.OrderProductIDs), l.LineCount)
	case l.OrderProductIDs[l.LineIndex] != l.ProductID:
		return invalid("order_product_ids", "entry %d is %d, not this line's product %d", l.LineIndex, l.OrderProductIDs[l.LineIndex], l.ProductID)
	case l.Route != "" && l.Route != RouteInternal && l.Route != RouteExternal:
		return invalid("route", "%q is not internal or external", l.Route)
	case l.RouteID < 0:
		return invalid("route_id", "must be positive, got %d", l.RouteID)
	}
	for i, id := range l.OrderProductIDs {
		if id <= 0 {
			return invalid("order_product_ids", "entry %d must be positive, got %d", i, id)
		}
	}
	for i, idx := range l.ExternalLines {
		if idx < 0 || idx >= l.LineCount || (i > 0 && idx <= l.ExternalLines[i-1]) {
			return invalid("external_lines", "must be increasing line indexes below %d", l.LineCount)
		}
	}
	if _, err := ParseTime(l.Time); err != nil {
		return invalid("time", "%q is not an RFC 3339 time, nor one without a zone", l.Time)
	}
	addr, err := netip.ParseAddr(l.IPAddress)
	if err != nil || !addr.Is4() || addr.String() != l.IPAddress {
		return invalid("ip_address", "%q is not an IPv4 address", l.IPAddress)
	}
	return nil
}
