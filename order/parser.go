package order

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

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
