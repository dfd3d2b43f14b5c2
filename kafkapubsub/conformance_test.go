package kafkapubsub

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/orderflow/orderflow/internal/testenv"
)

// conformancePartitions is the partition count of the suite's topics: more
// than one, so that consumer group members share a topic and acks come out
// of order across partitions.
const conformancePartitions = 8

// initializingSubscriber gives the suite's subscribers Watermill's
// SubscribeInitializer: the suite calls it before it publishes, and it
// creates the topic, as a deployment does with EnsureTopics (the clients do
// not create topics by producing to them).
type initializingSubscriber struct {
	*Subscriber
	brokers []string
}

func (s initializingSubscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return EnsureTopics(ctx, s.brokers, nil, map[string]int32{topic: conformancePartitions}, 1, nil)
}

// TestConformance runs Watermill's own Pub/Sub test suite against the
// Publisher and Subscriber, at least once and exactly once.
func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("at_least_once", func(t *testing.T) { t.Parallel(); conformance(t, false) })
	t.Run("exactly_once", func(t *testing.T) { t.Parallel(); conformance(t, true) })
}

func conformance(t *testing.T, exactlyOnce bool) {
	brokers, _ := testenv.Brokers(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub, err := NewPublisher(PublisherConfig{Brokers: brokers, DeliveryTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := NewSubscriber(SubscriberConfig{
			Brokers:        brokers,
			ConsumerGroup:  group,
			CommitInterval: 100 * time.Millisecond,
			// The suite closes subscribers holding unacked messages and
			// waits at most 15 s (its fixed timeout) for their contexts to
			// end, which they do after the drain timeout; the default 20 s
			// is meant for a router's handlers.
			DrainTimeout: 3 * time.Second,
			// The defaults: a member that stops heartbeating is dropped
			// after 10 s, and a rebalance waits DrainTimeout+10 s for
			// members to rejoin; both leave room for a slow machine.
			SessionTimeout: 10 * time.Second,
			// TestContinueAfterErrors nacks the same messages over and
			// over; a short backoff keeps it quick.
			NackBackoff:    20 * time.Millisecond,
			MaxNackBackoff: time.Second,
			Logger:         log,
			ExactlyOnce:    exactlyOnce,
			// MaxInFlight is left at its default (1024), as deployed.
		})
		if err != nil {
			t.Fatal(err)
		}
		return pub, initializingSubscriber{Subscriber: sub, brokers: brokers}
	}
	// Every case gets a consumer group of its own, shared by all the
	// subscribers it creates: its name comes from the case's test name.
	// A group shared by all cases would rebalance each time any case
	// subscribes.
	ownGroup := func(t *testing.T) (message.Publisher, message.Subscriber) {
		t.Helper()
		return withGroup(t, "conformance_"+strings.ReplaceAll(t.Name(), "/", "_"))
	}

	tests.TestPubSub(t, tests.Features{
		ConsumerGroups: true,
		// Watermill's ExactlyOnceDelivery means a message is never
		// delivered twice, which no Kafka consumer promises in either
		// mode: a message acked but not committed yet when its partition
		// moves or the process dies comes again. ExactlyOnce makes the
		// outputs of a hop exactly once (TestExactlyOnceHops), not the
		// deliveries. Setting it would also skip
		// TestContinueAfterSubscribeClose, which redelivery must pass.
		ExactlyOnceDelivery: false,
		// Not promised, and checked: up to MaxInFlight messages of a
		// subscription are out at once (TestNoAck gets a second message
		// while the first is unacked), and a nacked or rebalanced message
		// comes back after later ones of its partition
		// (TestPublishSubscribeInOrder sees them out of order).
		GuaranteedOrder: false,
		Persistent:      true,
		// Every subscriber is a consumer group member: a new member of the
		// same group resumes from the group's offsets instead of reading
		// the topic from the start.
		NewSubscriberReceivesOldMessages: false,
		// No RestartServiceCommand: the broker runs in this process, so
		// TestReconnect is skipped; faulttest restarts the broker under a
		// running pipeline (brokerTrouble).
	}, ownGroup, withGroup)
}
