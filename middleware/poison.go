package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/orderflow/orderflow/failure"
)

// Metadata keys of a poisoned message. The first three are Watermill's own,
// so Watermill tooling reads them too.
const (
	ReasonKey    = wmmiddleware.ReasonForPoisonedKey // why it was poisoned
	TopicKey     = wmmiddleware.PoisonedTopicKey     // the topic it was consumed from
	HandlerKey   = wmmiddleware.PoisonedHandlerKey   // the handler that failed
	GroupKey     = "group_poisoned"                  // the handler's consumer group
	PartitionKey = "partition_poisoned"              // where in the topic it was
	OffsetKey    = "offset_poisoned"
	KeyKey       = "key_poisoned"  // its Kafka key, so a replay lands on the same partition
	TimeKey      = "time_poisoned" // when it was poisoned, RFC 3339
	KindKey      = "kind_poisoned" // the permanent error kind, or "transient" after retries
	// SizeKey is set when the payload was too large for the poison queue:
	// the entry then holds an excerpt, and SizeKey the full size. The full
	// payload stays in Kafka at the entry's source position.
	SizeKey = "size_poisoned"
	// FirstCopyKey is set on a conflict: where the line's first copy was
	// read ("raw_order/3@1234"); the entry's own position is the copy's.
	FirstCopyKey = "first_copy_poisoned"
)

// MaxPoisonPayload is the largest payload a poison entry carries whole;
// the producer's batches are capped at 1 MiB, and the topic's
// max.message.bytes at its default of about that. A larger one is cut to
// ExcerptBytes.
const (
	MaxPoisonPayload = 256 << 10
	ExcerptBytes     = 1 << 10
)

// Origin locates a consumed message.
type Origin struct {
	Partition int32
	Offset    int64
	Key       []byte
}

// PoisonQueueConfig configures PoisonQueue.
type PoisonQueueConfig struct {
	// Publisher publishes the poisoned messages; wrap it to record the
	// failure in the order's status.
	Publisher message.Publisher
	Topic     string
	// Classifier says which errors go to the poison queue at once.
	Classifier Classifier
	// AfterRetries also poisons the other errors that reach the middleware,
	// which, with the retry middleware inside, have used up their retries.
	AfterRetries bool
	// Group is the consumer group of the handler, recorded as the origin.
	Group string
	// Origin returns where a message was consumed.
	Origin func(*message.Message) (Origin, bool)
	// ShuttingDown reports that the process is stopping: errors then are
	// never poisoned, because they may just be the shutdown.
	ShuttingDown func() bool
	Logger       *slog.Logger
	// Describe gives the log attributes that identify a message (its order
	// id and correlation id).
	Describe func(*message.Message) []any
	// OnPoison, when set, is called for every message poisoned, with or
	// without an order id: metrics count here, so that a line too broken to
	// name its order is counted too.
	OnPoison func(handler string)
}

// Validate reports a configuration that cannot work.
func (c PoisonQueueConfig) Validate() error {
	if c.Publisher == nil || c.Topic == "" {
		return errors.New("poison queue: publisher and topic are required")
	}
	return nil
}

// PoisonQueue moves a message its handler cannot process to the poison
// topic, with its origin and the reason, and acks it so that the pipeline
// goes on. It never poisons for the unavailability of MongoDB or the broker,
// or while the process shuts down: those messages are nacked and come again.
//
// Put it outside (before) the retry middleware, so that it sees an error only
// once the retries are spent.
func PoisonQueue(cfg PoisonQueueConfig) (message.HandlerMiddleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !cfg.poisons(err) {
				return out, err
			}
			cfg.mark(msg, err)
			if size := len(msg.Payload); size > MaxPoisonPayload {
				// Whole, it could not be published anywhere and would hold
				// its partition forever; its position says where it is.
				msg.Metadata.Set(SizeKey, strconv.Itoa(size))
				msg.Payload = msg.Payload[:ExcerptBytes:ExcerptBytes]
				if cfg.Logger != nil {
					cfg.Logger.Error("a line too large to poison whole: its poison entry holds an excerpt; the payload stays in Kafka at its source",
						"handler", msg.Metadata.Get(HandlerKey), "topic", msg.Metadata.Get(TopicKey), "partition", msg.Metadata.Get(PartitionKey),
						"offset", msg.Metadata.Get(OffsetKey), "bytes", size)
				}
			}
			if perr := cfg.Publisher.Publish(cfg.Topic, msg); perr != nil {
				return nil, errors.Join(err, fmt.Errorf("publish to poison queue %s: %w", cfg.Topic, perr))
			}
			if cfg.Logger != nil {
				attrs := []any{"handler", msg.Metadata.Get(HandlerKey), "topic", msg.Metadata.Get(TopicKey),
					"partition", msg.Metadata.Get(PartitionKey), "offset", msg.Metadata.Get(OffsetKey),
					"kind", msg.Metadata.Get(KindKey), "reason", err.Error()}
				if cfg.Describe != nil {
					attrs = append(attrs, cfg.Describe(msg)...)
				}
				cfg.Logger.Warn("message sent to the poison queue", attrs...)
			}
			if cfg.OnPoison != nil {
				cfg.OnPoison(msg.Metadata.Get(HandlerKey))
			}
			return nil, nil
		}
	}, nil
}

func (c PoisonQueueConfig) poisons(err error) bool {
	if failure.IsUnavailable(err) || (c.ShuttingDown != nil && c.ShuttingDown()) {
		return false
	}
	return c.Classifier.IsPermanent(err) || c.AfterRetries
}

func (c PoisonQueueConfig) mark(msg *message.Message, err error) {
	// The kind is what the error is, whether or not this stack poisons it
	// at once: an unknown_reference poisoned after its retries is still one,
	// so `poison replay --filter kind=unknown_reference` finds it.
	kind := "transient"
	if k, ok := failure.PermanentKind(err); ok {
		kind = string(k)
	}
	ctx := msg.Context()
	msg.Metadata.Set(ReasonKey, failure.Reason(err.Error()))
	msg.Metadata.Set(KindKey, kind)
	msg.Metadata.Set(TopicKey, message.SubscribeTopicFromCtx(ctx))
	msg.Metadata.Set(HandlerKey, message.HandlerNameFromCtx(ctx))
	msg.Metadata.Set(GroupKey, c.Group)
	msg.Metadata.Set(TimeKey, time.Now().UTC().Format(time.RFC3339Nano))
	if c.Origin != nil {
		if o, ok := c.Origin(msg); ok {
			msg.Metadata.Set(PartitionKey, strconv.Itoa(int(o.Partition)))
			msg.Metadata.Set(OffsetKey, strconv.FormatInt(o.Offset, 10))
			msg.Metadata.Set(KeyKey, string(o.Key))
		}
	}
}
