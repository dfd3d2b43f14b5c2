package kafkaclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
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
//
// Each topic is consumed in a group of its own (the group's name and the
// topic), as every handler of the pipeline consumes one topic in one group:
// a Sarama group whose members subscribe to different topics rebalances
// at every join, and TestTopic (one subscriber, two topics) then waited out
// its 15 s now and then.
type initializingSubscriber struct {
	newSub  func(group string) (message.Subscriber, error)
	group   string
	brokers []string

	mu   sync.Mutex
	subs map[string]message.Subscriber
}

func (s *initializingSubscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kafkapubsub.EnsureTopics(ctx, s.brokers, nil, map[string]int32{topic: 8}, 1, nil)
}

func (s *initializingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	sub := s.subs[topic]
	if sub == nil {
		var err error
		if sub, err = s.newSub(s.group + "." + topic); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.subs[topic] = sub
	}
	s.mu.Unlock()
	return sub.Subscribe(ctx, topic)
}

func (s *initializingSubscriber) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, sub := range s.subs {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
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
		return pub, &initializingSubscriber{newSub: k.NewSubscriber, group: group, brokers: brokers, subs: map[string]message.Subscriber{}}
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
