package aggregate

import (
	"strconv"

	"github.com/orderflow/orderflow/order"
)

// decimalFields are the number fields that are not integers.
var decimalFields = map[string]func(order.Line) float64{
	"product_price": func(l order.Line) float64 { return l.ProductPrice },
}

// integerFields are the number fields whose value is an integer: a group
// keyed by one keeps it as an integer in its result. With decimalFields
// they are the fields a measure can sum.
var integerFields = map[string]func(order.Line) int64{
	"order_id":         func(l order.Line) int64 { return l.OrderID },
	"product_id":       func(l order.Line) int64 { return l.ProductID },
	"order_qty":        func(l order.Line) int64 { return int64(l.OrderQty) },
	"from_location":    func(l order.Line) int64 { return l.FromLocation },
	"to_location":      func(l order.Line) int64 { return l.ToLocation },
	"unit_of_measures": func(l order.Line) int64 { return int64(l.UnitOfMeasures) },
	"route_id":         func(l order.Line) int64 { return int64(l.RouteID) },
}

// textFields are the line fields read as text: a group key, or a field
// carried into the result.
var textFields = map[string]func(order.Line) string{
	"ip_address":         func(l order.Line) string { return l.IPAddress },
	"uom_type":           func(l order.Line) string { return l.UOMType },
	"from_location_name": func(l order.Line) string { return l.FromLocationName },
	"to_location_name":   func(l order.Line) string { return l.ToLocationName },
	"route":              func(l order.Line) string { return l.Route },
	"product_name":       func(l order.Line) string { return l.ProductName },
	"category":           func(l order.Line) string { return l.Category },
}

// Fields lists the line fields an aggregation can read: name → "number" or
// "text". The configuration checks aggregations against it.
func Fields() map[string]string {
	out := map[string]string{}
	for n := range integerFields {
		out[n] = "number"
	}
	for n := range decimalFields {
		out[n] = "number"
	}
	for n := range textFields {
		out[n] = "text"
	}
	return out
}

// keyOf returns a line's group key as text.
func keyOf(field string, l order.Line) string {
	if f, ok := integerFields[field]; ok {
		return strconv.FormatInt(f(l), 10)
	}
	if f, ok := textFields[field]; ok {
		return f(l)
	}
	return strconv.FormatFloat(numberOf(field, l), 'f', -1, 64)
}

// numberOf returns a number field of a line.
func numberOf(field string, l order.Line) float64 {
	if f, ok := integerFields[field]; ok {
		return float64(f(l))
	}
	return decimalFields[field](l)
}

// textOf returns a field of a line as text, for carried fields.
func textOf(field string, l order.Line) string {
	if f, ok := textFields[field]; ok {
		return f(l)
	}
	return keyOf(field, l)
}

// GroupKey returns the group of a line, by the field given, as text: the
// Kafka key of a repartitioned line.
func GroupKey(field string, l order.Line) string { return keyOf(field, l) }
