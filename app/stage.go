package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/claim"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
	"github.com/orderflow/orderflow/tracing"
)

// stage adapts a processor to a Watermill handler: it decodes the message
// into a line, runs the processor, and turns the outcome into the message
// to publish, carrying the line's identity for the status publisher.
type stage struct {
	name      string
	subscribe string
	status    status.Status
	proc      handlers.Processor
	publish   string
	routes    map[string]string
	writer    status.Writer
	// claims, for a stage reading a source topic, tells a line's copies
	// with other content (conflicts) from redeliveries.
	claims lineClaims
	log    *slog.Logger
}

// lineClaims is the part of claim.Store a stage uses.
type lineClaims interface {
	Check(ctx context.Context, l claim.Line) (*claim.Conflict, error)
}

func (s *stage) handle(msg *message.Message) ([]*message.Message, error) {
	ref := status.LineRef{Stage: s.status, Handler: s.name, Topic: s.subscribe}
	pos, _ := kafkaclient.Position(msg)
	ref.Partition, ref.Offset = pos.Partition, pos.Offset
	line, err := order.DecodeLine(msg.Payload)
	if err != nil {
		// The key still names the order: its status records the failure.
		if id, perr := strconv.ParseInt(string(pos.Key), 10, 64); perr == nil && id > 0 && s.status != "" {
			ref.OrderID, ref.Line = id, -1
			msg.SetContext(status.WithLine(msg.Context(), ref))
		}
		s.log.Warn("undecodable message", "key", string(pos.Key), "partition", pos.Partition, "offset", pos.Offset,
			"correlation_id", wmmiddleware.MessageCorrelationID(msg), "error", err)
		return nil, failure.Permanent(failure.InvalidInput, err)
	}
	ref.OrderID, ref.Line, ref.Lines = line.OrderID, line.Ident(), line.LineCount
	trace.SpanFromContext(msg.Context()).SetAttributes(attribute.Int64("orderflow.order_id", line.OrderID), attribute.Int("orderflow.line", line.Ident()))
	ref.Generated, _ = order.ParseTime(line.Time) // validated by DecodeLine
	if s.claims != nil {
		c := claim.Line{OrderID: line.OrderID, Ident: line.Ident(), Open: line.Open(), Fingerprint: line.Fingerprint(),
			Topic: s.subscribe, Partition: pos.Partition, Offset: pos.Offset}
		conflict, err := s.claims.Check(msg.Context(), c)
		if err != nil {
			return nil, err
		}
		if conflict != nil {
			// The first copy stands, and its order goes on as it was: the
			// copy is poisoned without a status record.
			msg.Metadata.Set(middleware.FirstCopyKey, conflict.First.Position())
			s.log.Warn("conflicting copy of a line", "order_id", line.OrderID, "line", line.Ident(),
				"first", conflict.First.Position(), "copy", c.Position(), "correlation_id", wmmiddleware.MessageCorrelationID(msg))
			return nil, failure.Permanent(failure.Conflict, conflict)
		}
	}
	if s.status != "" {
		// An aggregation records no status: a line it poisons leaves its
		// order as it was.
		msg.SetContext(status.WithLine(msg.Context(), ref))
	}

	out, err := s.proc(msg.Context(), line)
	if err != nil {
		s.log.Warn("line failed", "order_id", line.OrderID, "line", line.Ident(),
			"correlation_id", wmmiddleware.MessageCorrelationID(msg), "error", err)
		return nil, err
	}
	switch {
	case out.Rejected != "":
		rec := ref.Record(status.Rejected)
		rec.Reason = out.Rejected
		if err := s.writer.Record(msg.Context(), rec); err != nil {
			return nil, failure.Unavailable(fmt.Errorf("record rejection of order %d: %w", line.OrderID, err))
		}
		s.log.Info("line rejected", "order_id", line.OrderID, "line", line.Ident(),
			"correlation_id", wmmiddleware.MessageCorrelationID(msg), "reason", out.Rejected)
		return nil, nil
	case out.Settled:
		return nil, nil
	}
	topic := s.publish
	if out.Route != "" {
		ref.Route = out.Route
		topic = s.routes[out.Route]
		if topic == "" {
			return nil, fmt.Errorf("processor chose route %q, which has no topic", out.Route)
		}
	}
	next := message.NewMessage(uuid.NewString(), order.Encode(out.Line))
	next.SetContext(withTopic(status.WithLine(kafkaclient.CarryHop(context.Background(), msg), ref), topic))
	tracing.Inject(msg.Context(), next) // a no-op unless tracing is on
	return []*message.Message{next}, nil
}

type topicKey struct{}

// withTopic names the topic a produced message goes to, for handlers with
// several outputs; the router only knows one publish topic per handler.
func withTopic(ctx context.Context, topic string) context.Context {
	return context.WithValue(ctx, topicKey{}, topic)
}

// topicRouter publishes each message to the topic named in its context, and
// messages without one to the handler's topic.
type topicRouter struct {
	next message.Publisher
	log  *slog.Logger
}

func (t *topicRouter) Publish(topic string, msgs ...*message.Message) error {
	groups := map[string][]*message.Message{}
	var order []string
	for _, m := range msgs {
		to := topic
		if named, ok := m.Context().Value(topicKey{}).(string); ok && named != "" {
			to = named
		}
		if _, seen := groups[to]; !seen {
			order = append(order, to)
		}
		groups[to] = append(groups[to], m)
	}
	for _, to := range order {
		if err := t.next.Publish(to, groups[to]...); err != nil {
			if t.log != nil {
				for _, m := range groups[to] {
					t.log.Warn("publish failed; the message is consumed again", append([]any{"topic", to, "error", err}, describe(m)...)...)
				}
			}
			return err
		}
	}
	return nil
}

func (t *topicRouter) Close() error { return t.next.Close() }
