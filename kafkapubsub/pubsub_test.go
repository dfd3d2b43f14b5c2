package kafkapubsub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
)

func keyByMetadata(_ string, msg *message.Message) ([]byte, error) {
	return []byte(msg.Metadata.Get("key")), nil
}

func publish(t *testing.T, brokers []string, topic string, n int) map[string]bool {
	t.Helper()
	pub, err := NewPublisher(PublisherConfig{Brokers: brokers, Key: keyByMetadata})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sent := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				msg := message.NewMessage(fmt.Sprintf("uuid-%d", i), []byte(fmt.Sprintf("payload-%d", i)))
				msg.Metadata.Set("key", fmt.Sprint(i%50))
				msg.Metadata.Set("n", fmt.Sprint(i))
				if err := pub.Publish(topic, msg); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent[msg.UUID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return sent
}

func newSub(t *testing.T, brokers []string, group string, mod func(*SubscriberConfig)) *Subscriber {
	t.Helper()
	cfg := SubscriberConfig{Brokers: brokers, ConsumerGroup: group, CommitInterval: 100 * time.Millisecond, DrainTimeout: 5 * time.Second, SessionTimeout: 6 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// receive takes messages until n distinct UUIDs arrived or the timeout
// passes, acking them as ack says.
func receive(t *testing.T, ch <-chan *message.Message, n int, timeout time.Duration, ack func(*message.Message) bool) map[string]int {
	t.Helper()
	got := map[string]int{}
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case msg, ok := <-ch:
			if !ok {
				return got
			}
			got[msg.UUID]++
			if ack == nil || ack(msg) {
				msg.Ack()
			} else {
				msg.Nack()
			}
		case <-deadline:
			return got
		}
	}
	return got
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	topic := "roundtrip_" + testenv.Unique()
	if err := EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 4}, 1, map[string]string{"min.insync.replicas": "1"}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	described, err := kadm.NewClient(cl).DescribeTopicConfigs(context.Background(), topic)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := described.On(topic, nil); err != nil || !slices.ContainsFunc(rc.Configs, func(c kadm.Config) bool {
		return c.Key == "min.insync.replicas" && c.MaybeValue() == "1"
	}) {
		t.Fatalf("created topic configs: %+v %v", rc, err)
	}
	parts, err := ExistingPartitions(context.Background(), brokers, nil, topic, "missing_"+testenv.Unique())
	if err != nil || parts[topic] != 4 || len(parts) != 1 {
		t.Fatalf("partitions %v %v", parts, err)
	}
	sent := publish(t, brokers, topic, 500)

	sub := newSub(t, brokers, "g1", nil)
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	keyPartition := map[string]int32{}
	got := receive(t, ch, len(sent), 30*time.Second, func(msg *message.Message) bool {
		pos, ok := PositionFromCtx(msg.Context())
		if !ok || pos.Topic != topic || string(pos.Key) != msg.Metadata.Get("key") {
			t.Errorf("position %+v for key %q", pos, msg.Metadata.Get("key"))
		}
		if p, seen := keyPartition[string(pos.Key)]; seen && p != pos.Partition {
			t.Errorf("key %s on partitions %d and %d", pos.Key, p, pos.Partition)
		}
		keyPartition[string(pos.Key)] = pos.Partition
		if want := fmt.Sprintf("payload-%s", msg.Metadata.Get("n")); string(msg.Payload) != want {
			t.Errorf("payload %q, want %q", msg.Payload, want)
		}
		return true
	})
	if len(got) != len(sent) {
		t.Fatalf("received %d of %d", len(got), len(sent))
	}
	sub.Close()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after Close")
	}

	// Everything was acked and committed: a new member of the group gets
	// nothing.
	sub2 := newSub(t, brokers, "g1", nil)
	defer sub2.Close()
	ch2, _ := sub2.Subscribe(context.Background(), topic)
	if again := receive(t, ch2, 1, 3*time.Second, nil); len(again) != 0 {
		t.Fatalf("redelivered after a clean close: %v", again)
	}
}

func TestUnackedMessagesAreRedeliveredAfterRestart(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	topic := "unacked_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 2}, 1, nil)
	publish(t, brokers, topic, 200)

	// Ack every message but three, out of order, and leave those unsettled,
	// as a crashed process would.
	held := map[string]bool{"uuid-3": true, "uuid-77": true, "uuid-150": true}
	sub := newSub(t, brokers, "g2", func(c *SubscriberConfig) { c.DrainTimeout = 200 * time.Millisecond })
	ch, _ := sub.Subscribe(context.Background(), topic)
	deadline := time.After(30 * time.Second)
	for seen := 0; seen < 200; seen++ {
		select {
		case msg := <-ch:
			if !held[msg.UUID] {
				msg.Ack()
			}
		case <-deadline:
			t.Fatalf("received %d of 200", seen)
		}
	}
	time.Sleep(300 * time.Millisecond) // commits of the acked prefixes
	sub.Close()

	sub = newSub(t, brokers, "g2", nil)
	defer sub.Close()
	ch, _ = sub.Subscribe(context.Background(), topic)
	again := receive(t, ch, 200, 5*time.Second, nil)
	for uuid := range held {
		if again[uuid] == 0 {
			t.Errorf("unacked %s was not redelivered (got %v)", uuid, again)
		}
	}
	// Only the unacked messages come again: the commits' metadata names
	// the acked ones after them, which the next owner skips.
	if len(again) != len(held) {
		t.Errorf("%d messages redelivered, want the %d unacked: %v", len(again), len(held), again)
	}
}

// TestLeavingTellsAHeldMessageItsPartitionGoes: a message its handler holds
// (waiting for another) learns from Position.Leaving that a joining member
// takes its partition, and the new owner gets it, but not the messages
// acked after it.
func TestLeavingTellsAHeldMessageItsPartitionGoes(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	topic := "leaving_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 2}, 1, nil)
	publish(t, brokers, topic, 40)
	a := newSub(t, brokers, "g7", nil)
	defer a.Close()
	cha, _ := a.Subscribe(context.Background(), topic)
	held := map[int32]*message.Message{} // the first of each partition: it holds the commit back
	for range 40 {
		msg := <-cha
		pos, ok := PositionFromCtx(msg.Context())
		if !ok || pos.Leaving == nil {
			t.Fatal("no Leaving in the message's position")
		}
		if held[pos.Partition] == nil {
			held[pos.Partition] = msg
			continue
		}
		msg.Ack()
	}
	time.Sleep(300 * time.Millisecond) // a commit of the acked ones above them
	b := newSub(t, brokers, "g7", nil)
	defer b.Close()
	chb, _ := b.Subscribe(context.Background(), topic)
	leaving := func(m *message.Message) <-chan struct{} { pos, _ := PositionFromCtx(m.Context()); return pos.Leaving }
	var moved *message.Message
	select {
	case <-leaving(held[0]):
		moved = held[0]
	case <-leaving(held[1]):
		moved = held[1]
	case <-time.After(30 * time.Second):
		t.Fatal("Leaving never closed, although a member joined")
	}
	gaveUp := time.Now()
	moved.Nack()
	// The new owner gets the held message and nothing else.
	got := map[string]int{}
	select {
	case msg := <-chb:
		got[msg.UUID]++
		msg.Ack()
	case <-time.After(20 * time.Second):
		t.Fatal("the held message was not consumed again")
	}
	if took := time.Since(gaveUp); took > 5*time.Second {
		t.Errorf("the partition took %v to move once its held message was given up", took)
	}
	time.Sleep(time.Second)
	for more := true; more; {
		select {
		case msg := <-chb:
			got[msg.UUID]++
		default:
			more = false
		}
	}
	if len(got) != 1 || got[moved.UUID] != 1 {
		t.Fatalf("the new owner got %v, want only %s", got, moved.UUID)
	}
	for _, m := range held {
		m.Ack()
	}
}

func TestNackRedeliversSameMessage(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	topic := "nack_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 1}, 1, nil)
	publish(t, brokers, topic, 1)
	sub := newSub(t, brokers, "g3", func(c *SubscriberConfig) { c.NackBackoff = 10 * time.Millisecond })
	defer sub.Close()
	ch, _ := sub.Subscribe(context.Background(), topic)
	var attempts int
	deadline := time.After(20 * time.Second)
	for attempts < 3 {
		select {
		case msg := <-ch:
			if msg.UUID != "uuid-0" || string(msg.Payload) != "payload-0" || msg.Metadata.Get("n") != "0" {
				t.Fatalf("redelivery differs: %s %q %v", msg.UUID, msg.Payload, msg.Metadata)
			}
			attempts++
			if attempts < 3 {
				msg.Nack()
			} else {
				msg.Ack()
			}
		case <-deadline:
			t.Fatalf("only %d deliveries", attempts)
		}
	}
}

func TestTwoMembersShareAndTakeOver(t *testing.T) {
	brokers, k := testenv.Brokers(t)
	if k == nil {
		t.Skip("needs the embedded broker to watch the group")
	}
	topic := "share_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 4}, 1, nil)
	a := newSub(t, brokers, "g4", nil)
	b := newSub(t, brokers, "g4", nil)
	cha, _ := a.Subscribe(context.Background(), topic)
	chb, _ := b.Subscribe(context.Background(), topic)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := k.Cluster().WaitGroupStable(ctx, "g4", 2); err != nil {
		t.Fatal(err)
	}
	sent := publish(t, brokers, topic, 400)

	var mu sync.Mutex
	got := map[string]int{}
	fromA, fromB := 0, 0
	drain := func(ch <-chan *message.Message, count *int, stop <-chan struct{}) {
		for {
			select {
			case msg, ok := <-ch:
				if !ok {
					return
				}
				mu.Lock()
				got[msg.UUID]++
				*count++
				mu.Unlock()
				msg.Ack()
			case <-stop:
				return
			}
		}
	}
	stopA, stopB := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); drain(cha, &fromA, stopA) }()
	go func() { defer wg.Done(); drain(chb, &fromB, stopB) }()
	waitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(sent) })
	mu.Lock()
	if fromA == 0 || fromB == 0 {
		t.Errorf("work not shared: a=%d b=%d", fromA, fromB)
	}
	mu.Unlock()

	// a leaves; b takes over all partitions and gets what is published next.
	close(stopA)
	a.Close()
	mu.Lock()
	before := fromB
	mu.Unlock()
	more := publish(t, brokers, topic, 100) // uuid-0..99 again
	waitFor(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return fromB-before >= len(more) })
	close(stopB)
	wg.Wait()
	b.Close()
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMessageContextEndsWhenSettled(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	topic := "msgctx_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 1}, 1, nil)
	publish(t, brokers, topic, 2)
	sub := newSub(t, brokers, "g5", func(c *SubscriberConfig) { c.NackBackoff = 10 * time.Millisecond })
	defer sub.Close()
	ch, _ := sub.Subscribe(context.Background(), topic)
	for _, settle := range []func(*message.Message) bool{(*message.Message).Ack, (*message.Message).Nack} {
		select {
		case msg := <-ch:
			if err := msg.Context().Err(); err != nil {
				t.Fatalf("context of %s ended before it was settled: %v", msg.UUID, err)
			}
			settle(msg)
			select {
			case <-msg.Context().Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("context of %s still live after it was settled", msg.UUID)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no message")
		}
	}
}

// A member whose router takes no messages (busy handlers) must not hold up
// a rebalance: the newcomer gets its partitions at once, not after the
// rebalance timeout, and the busy member stays in the group.
func TestBusyMemberDoesNotStallRebalance(t *testing.T) {
	brokers, k := testenv.Brokers(t)
	if k == nil {
		t.Skip("needs the embedded broker to watch the group")
	}
	topic := "busy_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 4}, 1, nil)
	sent := publish(t, brokers, topic, 200)
	slow := func(c *SubscriberConfig) { c.DrainTimeout, c.RebalanceTimeout = 20*time.Second, 40*time.Second }

	a := newSub(t, brokers, "g6", slow)
	defer a.Close()
	cha, _ := a.Subscribe(context.Background(), topic)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := k.Cluster().WaitGroupStable(ctx, "g6", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a polls and waits for its router, which reads nothing

	b := newSub(t, brokers, "g6", slow)
	defer b.Close()
	chb, _ := b.Subscribe(context.Background(), topic)
	start := time.Now()
	var first string
	select {
	case msg := <-chb:
		first = msg.UUID
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the newcomer got nothing: the rebalance waits for the busy member")
	}
	t.Logf("newcomer's first message after %s", time.Since(start))
	if g, err := k.Cluster().WaitGroupStable(ctx, "g6", 2); err != nil {
		t.Fatalf("group did not settle with both members: %v %+v", err, g)
	}

	// Nothing was lost on the way: both members together deliver all.
	var mu sync.Mutex
	got := map[string]bool{first: true}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, ch := range []<-chan *message.Message{cha, chb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case msg, ok := <-ch:
					if !ok {
						return
					}
					mu.Lock()
					got[msg.UUID] = true
					mu.Unlock()
					msg.Ack()
				case <-stop:
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("received %d of %d", n, len(sent))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
