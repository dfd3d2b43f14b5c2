package status

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Publisher decorates a publisher so that every message it publishes gets a
// status record, written only after the publish succeeded. Publish returns
// once both are done, so the router acks the consumed message only when its
// output is on the broker and its status is in MongoDB.
//
// This is where the status hook has to live: handler middleware runs before
// the router publishes a handler's output, so a middleware would record a
// status for a publish that may still fail.
type Publisher struct {
	Next   message.Publisher
	Writer Writer
	// Status is the status recorded for each message.
	Status Status
	// ReasonKey, when set, names the metadata entry that holds the reason
	// recorded with the status (the poison queue's reason, for Failed).
	ReasonKey string
	// Context bounds the status writes; with a retrying Writer it is what
	// stops the retries (at shutdown). Nil is context.Background().
	Context context.Context
}

// Publish publishes msgs to topic, then records their statuses. Messages
// without a LineRef in their context carry no order line and are not
// recorded.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.Next.Publish(topic, msgs...); err != nil {
		return err
	}
	recs := make([]Record, 0, len(msgs))
	for _, m := range msgs {
		ref, ok := LineFrom(m.Context())
		if !ok {
			continue
		}
		rec := ref.Record(p.Status)
		rec.Output = topic
		if p.ReasonKey != "" {
			rec.Reason = m.Metadata.Get(p.ReasonKey)
		}
		recs = append(recs, rec)
	}
	// The messages' contexts may already be cancelled (a timeout middleware
	// ends them when the handler returns); the write is bounded by the
	// publisher's own context instead.
	ctx := p.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if err := p.Writer.Record(ctx, recs...); err != nil {
		return fmt.Errorf("record %s status after publishing to %s: %w", p.Status, topic, err)
	}
	return nil
}

// Close closes the decorated publisher.
func (p *Publisher) Close() error { return p.Next.Close() }
