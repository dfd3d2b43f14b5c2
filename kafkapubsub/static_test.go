package kafkapubsub

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
)

// assignments returns each static member's partitions of topic in group,
// by instance id.
func assignments(t *testing.T, brokers []string, group, topic string) map[string][]int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, 10*time.Second)
	d, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int32{}
	for _, m := range d[group].Members {
		if m.InstanceID == nil {
			t.Fatalf("member %s of %s is not static", m.MemberID, group)
		}
		a, _ := m.Assigned.AsConsumer()
		for _, tp := range a.Topics {
			if tp.Topic == topic {
				out[*m.InstanceID] = slices.Sorted(slices.Values(tp.Partitions))
			}
		}
	}
	return out
}

// TestStaticMemberRestartKeepsItsPartitions: a router restarted under the
// same instance id (kafka.instance_id, or its host name) gets its own
// partitions back when it rejoins, not after the group gives up on the
// process that stopped, with at most one rebalance, and the other member
// keeps its partitions throughout. A static member that stops does not leave its group (as after
// a crash), so the session timeout is long here: the test fails if the
// partitions wait for it.
func TestStaticMemberRestartKeepsItsPartitions(t *testing.T) {
	brokers, k := testenv.Brokers(t)
	if k == nil {
		t.Skip("needs the embedded broker to watch the group")
	}
	const session = 45 * time.Second
	topic := "static_" + testenv.Unique()
	group := "gs_" + testenv.Unique()
	EnsureTopics(context.Background(), brokers, nil, map[string]int32{topic: 8}, 1, nil)
	static := func(id string) func(*SubscriberConfig) {
		return func(c *SubscriberConfig) {
			c.InstanceID = id
			c.SessionTimeout = session
			c.RebalanceTimeout = session
		}
	}
	a := newSub(t, brokers, group, static("a"))
	b := newSub(t, brokers, group, static("b"))
	defer b.Close()
	cha, _ := a.Subscribe(context.Background(), topic)
	chb, _ := b.Subscribe(context.Background(), topic)
	ctx := testenv.Context(t, 30*time.Second)
	if _, err := k.Cluster().WaitGroupStable(ctx, group, 2); err != nil {
		t.Fatal(err)
	}
	// The group is stable once both members hold partitions of the topic:
	// the first member to join takes all of them until the second's join
	// has gone through.
	var before map[string][]int32
	waitFor(t, 20*time.Second, func() bool {
		before = assignments(t, brokers, group, topic)
		return len(before["a-"+topic]) > 0 && len(before["b-"+topic]) > 0 && len(before["a-"+topic])+len(before["b-"+topic]) == 8
	})

	var mu sync.Mutex
	parts := map[string]map[int32]bool{}
	got := map[string]bool{}
	drain := func(name string, ch <-chan *message.Message, stop <-chan struct{}) {
		for {
			select {
			case msg, ok := <-ch:
				if !ok {
					return
				}
				pos, _ := PositionFromCtx(msg.Context())
				mu.Lock()
				if parts[name] == nil {
					parts[name] = map[int32]bool{}
				}
				parts[name][pos.Partition] = true
				got[msg.UUID] = true
				mu.Unlock()
				msg.Ack()
			case <-stop:
				return
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); drain("b", chb, stop) }()
	stopA := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); drain("a", cha, stopA) }()

	epoch := k.Cluster().GroupInfo(group).Epoch
	// a stops and comes back under its id: its partitions wait for it.
	close(stopA)
	a.Close()
	stopped := time.Now()
	a2 := newSub(t, brokers, group, static("a"))
	defer a2.Close()
	cha2, err := a2.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); drain("a2", cha2, stop) }()
	sent := publish(t, brokers, topic, 400)
	waitFor(t, session/2, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(sent) })
	took := time.Since(stopped)

	// No rebalance, or one if a led the group: kfake rebalances for a
	// static leader that rejoins (Kafka 3.2 and later does not, KIP-814).
	// A member that left and joined again would take two.
	if now := k.Cluster().GroupInfo(group).Epoch; now > epoch+1 {
		t.Errorf("the group went from generation %d to %d across one static restart", epoch, now)
	}
	after := assignments(t, brokers, group, topic)
	if !slices.Equal(after["a-"+topic], before["a-"+topic]) || !slices.Equal(after["b-"+topic], before["b-"+topic]) {
		t.Fatalf("assignment changed across the restart: before %v, after %v", before, after)
	}
	mu.Lock()
	defer mu.Unlock()
	for p := range parts["a2"] {
		if !slices.Contains(before["a-"+topic], p) {
			t.Errorf("the restarted member consumed partition %d, which was b's", p)
		}
	}
	for p := range parts["b"] {
		if !slices.Contains(before["b-"+topic], p) {
			t.Errorf("b consumed partition %d, which was a's", p)
		}
	}
	if len(parts["a2"]) != len(before["a-"+topic]) {
		t.Errorf("the restarted member consumed partitions %v, want all of %v", parts["a2"], before["a-"+topic])
	}
	t.Logf("restart to every message consumed: %v (session timeout %v)", took.Round(time.Millisecond), session)
}
