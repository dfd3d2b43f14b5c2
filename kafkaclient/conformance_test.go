package kafkaclient

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkapubsub"
)

// initializingSubscriber creates the suite's topics when it asks
// (SubscribeInitialize), as the pipeline does with EnsureTopics; it hides
// watermill-kafka's own SubscribeInitialize, which needs topic details the
// pipeline does not give it.
type initializingSubscriber struct {
	message.Subscriber
	brokers []string
}

func (s initializingSubscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kafkapubsub.EnsureTopics(ctx, s.brokers, nil, map[string]int32{topic: 8}, 1, nil)
}

// TestConformanceWatermillKafka runs Watermill's Pub/Sub test suite against
// the watermill-kafka (Sarama) publisher and subscriber as this package
// configures them.
func TestConformanceWatermillKafka(t *testing.T) {
	t.Parallel()
	brokers, _ := testenv.Brokers(t)
	k, err := New(config.KafkaConfig{
		Brokers: brokers, Client: "watermill-kafka", InitialOffset: "oldest", Compression: "none",
		CommitInterval: config.Duration{Duration: 100 * time.Millisecond},
		SessionTimeout: config.Duration{Duration: 10 * time.Second},
	}, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub, err := k.NewPublisher()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := k.NewSubscriber(group)
		if err != nil {
			t.Fatal(err)
		}
		return pub, initializingSubscriber{Subscriber: sub, brokers: brokers}
	}
	ownGroup := func(t *testing.T) (message.Publisher, message.Subscriber) {
		t.Helper()
		return withGroup(t, "conformance_"+strings.ReplaceAll(t.Name(), "/", "_"))
	}
	// The features watermill-kafka's own tests give its consumer group
	// subscriber; a group member does not read the topic from the start
	// (NewSubscriberReceivesOldMessages). The run is long in
	// TestContinueAfterErrors: watermill-kafka sleeps 100 ms after each of
	// its 300 nacks.
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false,
		Persistent:          true,
	}, ownGroup, withGroup)
}
