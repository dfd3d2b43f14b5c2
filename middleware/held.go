package middleware

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/failure"
)

// HeldLine is a message that keeps failing in a stack declared to redeliver
// without end (redeliver_forever).
type HeldLine struct {
	Handler  string    `json:"handler"`
	UUID     string    `json:"message_uuid"`
	OrderID  string    `json:"order_id,omitempty"`
	Attempts int       `json:"attempts"`
	Since    time.Time `json:"since"`
	Reason   string    `json:"reason"`

	reported bool // it failed ReportAfter times: listed from then on
}

// HeldLines tracks the held lines of a process, for /stuck and /readyz.
type HeldLines struct {
	mu    sync.Mutex
	lines map[string]*HeldLine // by handler and message UUID
}

// NewHeldLines returns an empty tracker.
func NewHeldLines() *HeldLines { return &HeldLines{lines: map[string]*HeldLine{}} }

// List returns the held lines (those reported: failed ReportAfter times at
// least), oldest first.
func (h *HeldLines) List() []HeldLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HeldLine, 0, len(h.lines))
	for _, l := range h.lines {
		if l.reported {
			out = append(out, *l)
		}
	}
	slices.SortFunc(out, func(a, b HeldLine) int { return a.Since.Compare(b.Since) })
	return out
}

// maxHeld bounds the lines tracked; past it new ones are not (each is still
// logged).
const maxHeld = 10000

// HeldConfig configures Held.
type HeldConfig struct {
	Lines *HeldLines
	// ReportAfter is the failures after which a line is logged at ERROR
	// level and counted, and again every ReportAfter failures.
	ReportAfter int
	Logger      *slog.Logger
	// OrderID names a message's order, for the report.
	OrderID func(*message.Message) string
	// OnHeld is called when a line is reported held for the first time.
	OnHeld func(handler string)
}

// Held watches a stack that may redeliver a line without end, so that such
// a line is never silent: after ReportAfter failures it is logged at ERROR
// level, counted, and listed (see HeldLines) until it succeeds. The
// unavailability of MongoDB or the broker does not count: that is a pause,
// not a line at fault. Put it outermost.
func Held(cfg HeldConfig) message.HandlerMiddleware {
	if cfg.ReportAfter < 1 {
		cfg.ReportAfter = 10
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			handler := message.HandlerNameFromCtx(msg.Context())
			key := handler + "/" + msg.UUID
			out, err := h(msg)
			lines := cfg.Lines
			lines.mu.Lock()
			defer lines.mu.Unlock()
			if err == nil {
				delete(lines.lines, key)
				return out, nil
			}
			if failure.IsUnavailable(err) {
				return out, err
			}
			l := lines.lines[key]
			if l == nil {
				l = &HeldLine{Handler: handler, UUID: msg.UUID, Since: time.Now()}
				if cfg.OrderID != nil {
					l.OrderID = cfg.OrderID(msg)
				}
				if len(lines.lines) < maxHeld {
					lines.lines[key] = l
				}
			}
			l.Attempts++
			l.Reason = err.Error()
			if l.Attempts >= cfg.ReportAfter {
				l.reported = true
			}
			if l.Attempts%cfg.ReportAfter == 0 {
				if l.Attempts == cfg.ReportAfter && cfg.OnHeld != nil {
					cfg.OnHeld(handler)
				}
				if cfg.Logger != nil {
					cfg.Logger.Error("line held: it keeps failing and its stack redelivers it without end (redeliver_forever)",
						"handler", handler, "message_uuid", msg.UUID, "order_id", l.OrderID, "attempts", l.Attempts,
						"since", l.Since, "error", err)
				}
			}
			return out, err
		}
	}
}
