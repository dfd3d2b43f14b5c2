package order

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Encode renders a line as the JSON every stage publishes. It writes the
// fields in a fixed order and omits the later stages' fields while they are
// empty. It is the inverse of DecodeLine.
func Encode(l Line) []byte {
	return AppendLine(make([]byte, 0, 512), l)
}

// AppendLine appends the JSON of l to b.
func AppendLine(b []byte, l Line) []byte {
	b = append(b, `{"order_id":`...)
	b = strconv.AppendInt(b, l.OrderID, 10)
	b = append(b, `,"time":`...)
	b = appendString(b, l.Time)
	b = append(b, `,"ip_address":`...)
	b = appendString(b, l.IPAddress)
	b = append(b, `,"product_id":`...)
	b = strconv.AppendInt(b, l.ProductID, 10)
	b = append(b, `,"order_qty":`...)
	b = strconv.AppendInt(b, int64(l.OrderQty), 10)
	b = append(b, `,"from_location":`...)
	b = strconv.AppendInt(b, l.FromLocation, 10)
	b = append(b, `,"to_location":`...)
	b = strconv.AppendInt(b, l.ToLocation, 10)
	b = append(b, `,"unit_of_measures":`...)
	b = strconv.AppendInt(b, int64(l.UnitOfMeasures), 10)
	b = append(b, `,"uom_type":`...)
	b = appendString(b, l.UOMType)
	b = append(b, `,"product_price":`...)
	b = strconv.AppendFloat(b, l.ProductPrice, 'f', -1, 64)
	if !l.Open() { // an open line keeps the original's format
		b = append(b, `,"line_index":`...)
		b = strconv.AppendInt(b, int64(l.LineIndex), 10)
		b = append(b, `,"line_count":`...)
		b = strconv.AppendInt(b, int64(l.LineCount), 10)
		b = append(b, `,"order_product_ids":[`...)
		for i, id := range l.OrderProductIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, id, 10)
		}
		b = append(b, ']')
	}
	if l.FromLocationName != "" {
		b = append(b, `,"from_location_name":`...)
		b = appendString(b, l.FromLocationName)
	}
	if l.ToLocationName != "" {
		b = append(b, `,"to_location_name":`...)
		b = appendString(b, l.ToLocationName)
	}
	if l.RouteID != 0 {
		b = append(b, `,"route_id":`...)
		b = strconv.AppendInt(b, int64(l.RouteID), 10)
	}
	if l.Route != "" {
		b = append(b, `,"route":`...)
		b = appendString(b, l.Route)
	}
	if l.ProductName != "" {
		b = append(b, `,"product_name":`...)
		b = appendString(b, l.ProductName)
	}
	if l.Category != "" {
		b = append(b, `,"category":`...)
		b = appendString(b, l.Category)
	}
	if len(l.ExternalLines) > 0 {
		b = append(b, `,"external_lines":[`...)
		for i, idx := range l.ExternalLines {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(idx), 10)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendString writes s as a JSON string. Plain ASCII, the common case, is
// copied directly; anything else goes through encoding/json for correct
// escaping.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Fingerprint identifies the line's content: a hash of its encoding, so two
// copies that differ only in how their JSON was written (spacing, field
// order) have the same one. 16 bytes of SHA-256, in hex.
func (l Line) Fingerprint() string {
	sum := sha256.Sum256(Encode(l))
	return hex.EncodeToString(sum[:16])
}
