package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KeyFunc returns the Kafka key of a message; nil spreads keyless messages
// over the partitions.
type KeyFunc func(topic string, msg *message.Message) ([]byte, error)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Brokers []string
	// ClientOptions are added to the client's options (TLS, SASL).
	ClientOptions []kgo.Opt
	// Key gives each message its key.
	Key KeyFunc
	// Linger is how long the producer waits to fill a batch. Zero sends as
	// soon as possible; batches still form while a request is in flight.
	Linger time.Duration
	// DeliveryTimeout bounds a Publish: a broker that stays away longer makes
	// it fail, and the caller retries the message later.
	DeliveryTimeout time.Duration
}

func (c *PublisherConfig) setDefaults() {
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 30 * time.Second
	}
}

// Validate reports a configuration that cannot work.
func (c PublisherConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka publisher: no brokers")
	}
	if c.DeliveryTimeout < 0 || c.Linger < 0 {
		return errors.New("kafka publisher: timeouts must not be negative")
	}
	return nil
}

// Publisher publishes Watermill messages to Kafka through a batching,
// idempotent producer. It is safe for concurrent use, and concurrency is what
// makes it fast.
type Publisher struct {
	cfg    PublisherConfig
	client *kgo.Client

	closeOnce sync.Once
}

// NewPublisher connects a publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ProducerLinger(cfg.Linger),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(20_000),
	}, cfg.ClientOptions...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	return &Publisher{cfg: cfg, client: client}, nil
}

// Publish sends msgs to topic and returns when the broker has acknowledged
// all of them, or with the first error.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// Messages carrying the hop of a consumed message (CarryHop) go in its
	// subscription's transaction; the others through this producer.
	var hops map[*hop][]*kgo.Record
	var plain []*kgo.Record
	for _, msg := range msgs {
		r, err := p.record(topic, msg)
		if err != nil {
			return err
		}
		if h := hopFrom(msg.Context()); h != nil {
			if hops == nil {
				hops = map[*hop][]*kgo.Record{}
			}
			hops[h] = append(hops[h], r)
		} else {
			plain = append(plain, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DeliveryTimeout+time.Second)
	defer cancel()
	for h, recs := range hops {
		if err := h.sub.produce(ctx, h, recs); err != nil {
			return fmt.Errorf("publish to %s in a transaction: %w", topic, err)
		}
	}
	if len(plain) == 0 {
		return nil
	}
	if err := p.client.ProduceSync(ctx, plain...).FirstErr(); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

func (p *Publisher) record(topic string, msg *message.Message) (*kgo.Record, error) {
	if msg.Metadata.Get(UUIDHeader) != "" {
		return nil, fmt.Errorf("metadata %s is reserved for the message UUID", UUIDHeader)
	}
	r := &kgo.Record{Topic: topic, Value: msg.Payload}
	if p.cfg.Key != nil {
		key, err := p.cfg.Key(topic, msg)
		if err != nil {
			return nil, fmt.Errorf("key of message %s: %w", msg.UUID, err)
		}
		r.Key = key
	}
	r.Headers = make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: UUIDHeader, Value: []byte(msg.UUID)})
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(msg.Metadata[k])})
	}
	return r, nil
}

// Close flushes what is buffered and disconnects.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DeliveryTimeout)
		defer cancel()
		_ = p.client.Flush(ctx) // records not flushed by now fail their Publish
		p.client.Close()
	})
	return nil
}
