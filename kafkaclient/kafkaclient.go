// Package kafkaclient builds the Kafka clients the configuration asks for:
// Watermill publishers and subscribers of either implementation, franz-go
// (kafkapubsub, the default) or watermill-kafka (Sarama), with TLS and SASL
// applied, and topic creation.
package kafkaclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/IBM/sarama"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/wmlog"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/status"
)

// Kafka builds the Watermill publishers and subscribers of the configured
// implementation, with TLS and SASL applied.
type Kafka struct {
	cfg    config.KafkaConfig
	log    *slog.Logger
	kgo    []kgo.Opt
	tls    *tls.Config
	traced bool
}

// New prepares the clients of cfg; it connects nothing yet.
func New(cfg config.KafkaConfig, traced bool, log *slog.Logger) (*Kafka, error) {
	if len(cfg.Brokers) == 0 {
		return nil, config.ErrNoBrokers
	}
	k := &Kafka{cfg: cfg, log: log, traced: traced}
	codec := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}[cfg.Compression]
	k.kgo = append(k.kgo, kgo.ProducerBatchCompression(codec))
	if cfg.TLS.Enabled {
		t, err := cfg.TLS.Load()
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		k.tls = t
		k.kgo = append(k.kgo, kgo.DialTLSConfig(t))
	}
	switch cfg.SASL.Mechanism {
	case "PLAIN":
		k.kgo = append(k.kgo, kgo.SASL(plain.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		k.kgo = append(k.kgo, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		k.kgo = append(k.kgo, kgo.SASL(scram.Auth{User: cfg.SASL.Username, Pass: cfg.SASL.Password}.AsSha512Mechanism()))
	}
	return k, nil
}

// ClientOptions are the franz-go options for TLS and SASL, for tools that
// talk to Kafka directly.
func (k *Kafka) ClientOptions() []kgo.Opt { return k.kgo }

// InstanceID is the id of this process's static memberships, "" when it
// is a dynamic member of its groups. It is resolved (the host name) only
// here, for the processes that join groups.
func (k *Kafka) InstanceID() (string, error) { return k.cfg.ResolveInstanceID(os.Hostname) }

// Brokers returns the broker addresses.
func (k *Kafka) Brokers() []string { return k.cfg.Brokers }

// EnsureTopics creates the configured topics that do not exist, and warns
// about existing ones whose partition count differs from the configuration.
func (k *Kafka) EnsureTopics(ctx context.Context, topics map[string]config.TopicConfig) error {
	want := make(map[string]int32, len(topics))
	for name, t := range topics {
		want[name] = int32(t.Partitions)
	}
	configs := map[string]string{"min.insync.replicas": strconv.Itoa(k.cfg.MinInsyncReplicas)}
	if err := kafkapubsub.EnsureTopics(ctx, k.cfg.Brokers, k.kgo, want, int16(k.cfg.Replication), configs); err != nil {
		return err
	}
	have, err := kafkapubsub.ExistingPartitions(ctx, k.cfg.Brokers, k.kgo, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return err
	}
	for name, n := range have {
		if n != want[name] {
			k.log.Warn("topic has a different partition count than configured; it is left as it is", "topic", name, "partitions", n, "configured", want[name])
		}
	}
	return nil
}

// NewPublisher returns a publisher keyed by order id.
func (k *Kafka) NewPublisher() (message.Publisher, error) {
	if k.cfg.Client == "watermill-kafka" {
		sc, err := k.producerConfig()
		if err != nil {
			return nil, err
		}
		pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
			Brokers: k.cfg.Brokers,
			Marshaler: wmkafka.NewWithPartitioningMarshaler(func(topic string, msg *message.Message) (string, error) {
				return string(messageKey(topic, msg)), nil
			}),
			OverwriteSaramaConfig: sc,
			OTELEnabled:           k.traced,
		}, wmlog.New(k.log))
		if err != nil {
			return nil, fmt.Errorf("create watermill-kafka publisher: %w", err)
		}
		return pub, nil
	}
	pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{
		Brokers:         k.cfg.Brokers,
		ClientOptions:   k.kgo,
		Key:             func(topic string, msg *message.Message) ([]byte, error) { return messageKey(topic, msg), nil },
		Linger:          k.cfg.Linger.Duration,
		DeliveryTimeout: k.cfg.DeliveryTimeout.Duration,
	})
	if err != nil {
		return nil, fmt.Errorf("create kafka publisher: %w", err)
	}
	return pub, nil
}

// NewSubscriber returns a subscriber in the given consumer group.
func (k *Kafka) NewSubscriber(group string) (message.Subscriber, error) {
	if k.cfg.Client == "watermill-kafka" {
		sc, err := k.saramaConfig()
		if err != nil {
			return nil, err
		}
		sc.Consumer.Return.Errors = true
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		if k.cfg.InitialOffset == "latest" {
			sc.Consumer.Offsets.Initial = sarama.OffsetNewest
		}
		sc.Consumer.Offsets.AutoCommit.Interval = k.cfg.CommitInterval.Duration
		sc.Consumer.Group.Session.Timeout = k.cfg.SessionTimeout.Duration
		sc.Consumer.Group.Heartbeat.Interval = k.cfg.SessionTimeout.Duration / 3
		sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
			Brokers:               k.cfg.Brokers,
			Unmarshaler:           wmkafka.DefaultMarshaler{},
			OverwriteSaramaConfig: sc,
			ConsumerGroup:         group,
			OTELEnabled:           k.traced,
		}, wmlog.New(k.log))
		if err != nil {
			return nil, fmt.Errorf("create watermill-kafka subscriber: %w", err)
		}
		return sub, nil
	}
	id, err := k.InstanceID()
	if err != nil {
		return nil, err
	}
	sub, err := kafkapubsub.NewSubscriber(kafkapubsub.SubscriberConfig{
		Brokers:          k.cfg.Brokers,
		ConsumerGroup:    group,
		ClientOptions:    k.kgo,
		FromLatest:       k.cfg.InitialOffset == "latest",
		MaxInFlight:      k.cfg.MaxInFlight,
		CommitInterval:   k.cfg.CommitInterval.Duration,
		DrainTimeout:     k.cfg.DrainTimeout.Duration,
		SessionTimeout:   k.cfg.SessionTimeout.Duration,
		RebalanceTimeout: k.cfg.RebalanceTimeout.Duration,
		InstanceID:       id,
		ExactlyOnce:      k.cfg.Guarantee == config.ExactlyOnce,
		Logger:           k.log,
	})
	if err != nil {
		return nil, fmt.Errorf("create kafka subscriber: %w", err)
	}
	return sub, nil
}

// CarryHop returns ctx with the transaction of the consumed message from,
// for the messages a handler publishes for it (see kafkapubsub.CarryHop).
func CarryHop(ctx context.Context, from *message.Message) context.Context {
	return kafkapubsub.CarryHop(ctx, from.Context())
}

// producerConfig is the Sarama configuration of the watermill-kafka
// publisher.
func (k *Kafka) producerConfig() (*sarama.Config, error) {
	sc, err := k.saramaConfig()
	if err != nil {
		return nil, err
	}
	sc.Producer.Retry.Max = 10
	sc.Producer.Return.Successes = true
	// Durable and without duplicates from the producer's own retries:
	// every in-sync replica has a record before it counts as sent,
	// and the broker drops a retried batch it already has.
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Partitioner = newJavaPartitioner
	sc.Producer.Compression = map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}[k.cfg.Compression]
	return sc, nil
}

func (k *Kafka) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = "orderflow"
	sc.Version = sarama.V2_1_0_0
	if k.tls != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = k.tls
	}
	if m := k.cfg.SASL.Mechanism; m != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.User = k.cfg.SASL.Username
		sc.Net.SASL.Password = k.cfg.SASL.Password
		switch m {
		case "PLAIN":
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism %s is supported with the franz client only", m)
		}
	}
	return sc, nil
}

// KeyMetadata is the metadata entry that sets a message's Kafka key
// explicitly: an aggregation's results and repartitioned lines are keyed by
// their group, not by an order.
const KeyMetadata = "partition_key"

// messageKey is the Kafka key of a message: its order id, so every line of
// an order lands on the same partition of every topic. A message that could
// not be decoded keeps the key it came with.
func messageKey(_ string, msg *message.Message) []byte {
	if k := msg.Metadata.Get(KeyMetadata); k != "" {
		return []byte(k)
	}
	if ref, ok := status.LineFrom(msg.Context()); ok && ref.OrderID > 0 {
		return strconv.AppendInt(nil, ref.OrderID, 10)
	}
	if pos, ok := Position(msg); ok {
		return pos.Key
	}
	return nil
}

// Position returns where a consumed message came from, with either Kafka
// implementation.
func Position(msg *message.Message) (kafkapubsub.Position, bool) {
	ctx := msg.Context()
	if p, ok := kafkapubsub.PositionFromCtx(ctx); ok {
		return p, true
	}
	part, ok := wmkafka.MessagePartitionFromCtx(ctx)
	if !ok {
		return kafkapubsub.Position{}, false
	}
	off, _ := wmkafka.MessagePartitionOffsetFromCtx(ctx)
	key, _ := wmkafka.MessageKeyFromCtx(ctx)
	return kafkapubsub.Position{Topic: message.SubscribeTopicFromCtx(ctx), Partition: part, Offset: off, Key: key}, true
}

// javaPartitioner places keys like the Java client and franz-go do
// (murmur2), so the two client implementations agree on every key's
// partition.
type javaPartitioner struct{ random sarama.Partitioner }

func newJavaPartitioner(topic string) sarama.Partitioner {
	return javaPartitioner{random: sarama.NewRandomPartitioner(topic)}
}

func (p javaPartitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if msg.Key == nil {
		return p.random.Partition(msg, n)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	return int32(murmur2(key)&0x7fffffff) % n, nil
}

func (javaPartitioner) RequiresConsistency() bool { return true }

// murmur2 is Kafka's key hash (Utils.murmur2 of the Java client).
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> 24
		k *= m
		h = h*m ^ k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
