package order

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"unicode/utf8"
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

// parser is a small strict parser for the flat JSON object of a line.
type parser struct {
	data []byte
	pos  int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) syntax(format string, args ...any) error {
	return invalid("", "malformed JSON at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) expect(c byte) error {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return p.syntax("unexpected end, want %q", c)
	}
	if p.data[p.pos] != c {
		return p.syntax("got %q, want %q", p.data[p.pos], c)
	}
	p.pos++
	return nil
}

func (p *parser) peek() byte {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return 0
	}
	return p.data[p.pos]
}

func (p *parser) object(l *Line) (seen uint32, err error) {
	if p.peek() != '{' {
		if p.pos < len(p.data) {
			return 0, invalid("", "payload is not a JSON object (starts with %q)", p.data[p.pos])
		}
		return 0, p.syntax("unexpected end")
	}
	p.pos++
	if p.peek() == '}' {
		p.pos++
	} else {
		for {
			key, err := p.str("")
			if err != nil {
				return 0, err
			}
			idx, ok := fieldIndex[key]
			if !ok {
				return 0, invalid(key, "unknown field")
			}
			if seen&(1<<idx) != 0 {
				return 0, invalid(key, "duplicate field")
			}
			seen |= 1 << idx
			if err := p.expect(':'); err != nil {
				return 0, err
			}
			if err := p.value(l, idx); err != nil {
				return 0, err
			}
			c := p.peek()
			if c == ',' {
				p.pos++
				continue
			}
			if c == '}' {
				p.pos++
				break
			}
			return 0, p.syntax("want ',' or '}' after %s", key)
		}
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return 0, p.syntax("trailing data after the object")
	}
	return seen, nil
}

func (p *parser) value(l *Line, idx int) error {
	name := fieldNames[idx]
	if p.peek() == 'n' {
		if err := p.literal("null"); err != nil {
			return err
		}
		if requiredFields&(1<<idx) != 0 {
			return invalid(name, "must not be null")
		}
		return nil
	}
	var err error
	switch idx {
	case fOrderID:
		l.OrderID, err = p.int64(name)
	case fProductID:
		l.ProductID, err = p.int64(name)
	case fFrom:
		l.FromLocation, err = p.int64(name)
	case fTo:
		l.ToLocation, err = p.int64(name)
	case fQty:
		l.OrderQty, err = p.int(name)
	case fUOM:
		l.UnitOfMeasures, err = p.int(name)
	case fLineIndex:
		l.LineIndex, err = p.int(name)
	case fLineCount:
		l.LineCount, err = p.int(name)
	case fRouteID:
		l.RouteID, err = p.int(name)
	case fPrice:
		l.ProductPrice, err = p.float(name)
	case fTime:
		l.Time, err = p.str(name)
	case fIP:
		l.IPAddress, err = p.str(name)
	case fUOMType:
		l.UOMType, err = p.str(name)
	case fFromName:
		l.FromLocationName, err = p.str(name)
	case fToName:
		l.ToLocationName, err = p.str(name)
	case fRoute:
		l.Route, err = p.str(name)
	case fProductName:
		l.ProductName, err = p.str(name)
	case fCategory:
		l.Category, err = p.str(name)
	case fOrderProducts:
		err = p.array(name, func() error {
			v, err := p.int64(name)
			l.OrderProductIDs = append(l.OrderProductIDs, v)
			return err
		})
		if err == nil && l.OrderProductIDs == nil {
			l.OrderProductIDs = []int64{}
		}
	case fExternalLines:
		err = p.array(name, func() error {
			v, err := p.int(name)
			l.ExternalLines = append(l.ExternalLines, v)
			return err
		})
	}
	return err
}

func (p *parser) literal(word string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return p.syntax("invalid literal")
	}
	p.pos += len(word)
	return nil
}

// typeOf names the JSON type of the value at the current position, for
// errors such as "expected a string, got an object".
func (p *parser) typeOf() string {
	switch c := p.peek(); {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c == 0:
		return "the end of the payload"
	default:
		return fmt.Sprintf("%q", c)
	}
}

func (p *parser) array(name string, elem func() error) error {
	if p.peek() != '[' {
		return invalid(name, "expected an array, got %s", p.typeOf())
	}
	p.pos++
	if p.peek() == ']' {
		p.pos++
		return nil
	}
	for n := 0; ; n++ {
		if n >= MaxProducts {
			return invalid(name, "has more than %d entries", MaxProducts)
		}
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.syntax("want ',' or ']' in %s", name)
		}
	}
}

// number returns the bytes of a JSON number, checking its grammar.
func (p *parser) number(name string) ([]byte, bool, error) {
	c := p.peek()
	if c != '-' && (c < '0' || c > '9') {
		return nil, false, invalid(name, "expected a number, got %s", p.typeOf())
	}
	start, i, d := p.pos, p.pos, p.data
	isFloat := false
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, false, invalid(name, "malformed number")
	}
	if i < len(d) && d[i] == '.' {
		isFloat = true
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false, invalid(name, "malformed number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		isFloat = true
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false, invalid(name, "malformed number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.pos = i
	return d[start:i], isFloat, nil
}

func (p *parser) int64(name string) (int64, error) {
	raw, isFloat, err := p.number(name)
	if err != nil {
		return 0, err
	}
	if isFloat {
		return 0, invalid(name, "expected an integer, got %s", raw)
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, invalid(name, "integer %s is out of range", raw)
	}
	return v, nil
}

func (p *parser) int(name string) (int, error) {
	v, err := p.int64(name)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, invalid(name, "integer %d is out of range", v)
	}
	return int(v), nil
}

func (p *parser) float(name string) (float64, error) {
	raw, _, err := p.number(name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, invalid(name, "number %s is out of range", raw)
	}
	return v, nil
}

// str reads a JSON string. Plain strings are sliced directly; strings with
// escapes are handed to encoding/json, which implements the full grammar.
func (p *parser) str(name string) (string, error) {
	if p.peek() != '"' {
		if name == "" {
			return "", p.syntax("expected a field name")
		}
		return "", invalid(name, "expected a string, got %s", p.typeOf())
	}
	start := p.pos
	p.pos++
	escaped := false
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			raw := p.data[start:p.pos]
			if !escaped {
				s := string(raw[1 : len(raw)-1])
				if !utf8.ValidString(s) {
					return "", invalid(name, "string is not valid UTF-8")
				}
				return s, nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", invalid(name, "malformed string")
			}
			return s, nil
		case c == '\\':
			escaped = true
			p.pos += 2
		case c < 0x20:
			return "", invalid(name, "control character in string")
		default:
			p.pos++
		}
	}
	return "", p.syntax("unterminated string")
}
