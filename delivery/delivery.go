// Package delivery hands external orders to partners: as one JSON file per
// order in a directory, or as an HTTP POST. Delivery is at least once; the
// same order always yields the same document and the same idempotency key,
// so a partner can drop repeats.
package delivery

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/order"
)

// Document is what a partner receives for one order: the order's lines that
// are routed to the partner. Its content depends only on the order, never on
// when or how often it is delivered.
type Document struct {
	// Name names the delivery: the order id, or for a line of the original
	// system's format (see order.Line.Open), order id and product id. Files
	// and idempotency keys are named by it.
	Name           string `json:"-"`
	OrderID        int64  `json:"order_id"`
	Partner        string `json:"partner"`
	IdempotencyKey string `json:"idempotency_key"`
	Time           string `json:"time"`
	IPAddress      string `json:"ip_address"`
	// LineCount is the number of lines of the whole order.
	LineCount int `json:"line_count"`
	// Lines are the lines delivered here, by line index.
	Lines []order.Line `json:"lines"`
	// Partial is set when the order has lines that are not in this
	// delivery (routed internally, or to another partner); Note says which.
	Partial bool   `json:"partial"`
	Note    string `json:"note,omitempty"`
}

// IdempotencyKey is the key of an order's delivery to a partner, sent in the
// Idempotency-Key header and written in the document.
func IdempotencyKey(orderID int64, partner string) string {
	return "orderflow-" + strconv.FormatInt(orderID, 10) + "-" + partner
}

// NewDocument builds the document of lines, which must belong to one order.
// internal lists the order's lines routed internally and elsewhere those
// going to other partners.
func NewDocument(partner string, lines []order.Line, internal, elsewhere []int) Document {
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b order.Line) int { return a.LineIndex - b.LineIndex })
	first := lines[0]
	name := strconv.FormatInt(first.OrderID, 10)
	if first.Open() {
		name += "-" + strconv.FormatInt(first.ProductID, 10)
	}
	d := Document{
		Name:           name,
		OrderID:        first.OrderID,
		Partner:        partner,
		IdempotencyKey: "orderflow-" + name + "-" + partner,
		Time:           first.Time,
		IPAddress:      first.IPAddress,
		LineCount:      first.LineCount,
		Lines:          lines,
	}
	if !first.Open() && len(lines) < first.LineCount {
		d.Partial = true
		var parts []string
		if len(internal) > 0 {
			parts = append(parts, fmt.Sprintf("line%s routed internally", indexes(internal)))
		}
		if len(elsewhere) > 0 {
			parts = append(parts, fmt.Sprintf("line%s delivered to another partner", indexes(elsewhere)))
		}
		d.Note = fmt.Sprintf("this delivery carries %d of the order's %d lines; %s", len(lines), first.LineCount, strings.Join(parts, "; "))
	}
	return d
}

func indexes(idx []int) string {
	s := make([]string, len(idx))
	for i, v := range idx {
		s[i] = strconv.Itoa(v)
	}
	if len(s) > 1 {
		return "s " + strings.Join(s, ", ")
	}
	return " " + s[0]
}

// JSON renders the document, indented; the same document always gives the
// same bytes.
func (d Document) JSON() []byte {
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err) // a Document always marshals
	}
	return append(out, '\n')
}
