// Package kafkapubsub is a Watermill Publisher and Subscriber for Kafka built
// on franz-go, for throughput.
//
// watermill-kafka hands the router one message per partition at a time and
// publishes synchronously, one round trip per message. Here:
//   - the Subscriber hands the router up to MaxInFlight messages at once, from
//     any partition, and commits for each partition the offset below which
//     every message has been acked, so an ack out of order never commits past
//     a message still in flight;
//   - the Publisher hands records to an asynchronous, batching producer and
//     returns once the broker has acknowledged them, so concurrent Publish
//     calls share produce requests.
//
// The router, its middleware and the ack semantics are unchanged: a message is
// acked when its handler and the publish of its output succeeded, and only
// acked messages are committed. Delivery is at least once; with
// SubscriberConfig.ExactlyOnce, the outputs a handler publishes with the
// consumed message's hop (CarryHop) and that message's offset commit in one
// Kafka transaction (txn.go), and consumers read committed data only.
//
// Messages use watermill-kafka's conventions: the message UUID travels in the
// _watermill_message_uuid header and metadata entries become headers, so the
// two implementations read each other's messages.
package kafkapubsub

import "context"

// UUIDHeader carries the Watermill message UUID, as in watermill-kafka.
const UUIDHeader = "_watermill_message_uuid"

type positionKey struct{}

// Position locates a consumed message in Kafka.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	// Claim is done when the partition leaves this subscriber (revoked or
	// lost), so that state kept per partition can be dropped: its next
	// owner may change it.
	Claim context.Context
	// Leaving is closed when the partition starts to leave, before the
	// revoke waits DrainTimeout for the messages in flight: a handler that
	// only waits (for a message that comes later) should give its message
	// up at once, so the partition goes quickly, to the member that will
	// get the message it waits for.
	Leaving <-chan struct{}
}

// PositionFromCtx returns the position of the message whose context is ctx.
func PositionFromCtx(ctx context.Context) (Position, bool) {
	p, ok := ctx.Value(positionKey{}).(*Position)
	if !ok {
		return Position{}, false
	}
	return *p, true
}

func withPosition(ctx context.Context, p *Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}
