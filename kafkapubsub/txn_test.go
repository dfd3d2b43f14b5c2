package kafkapubsub

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/internal/testenv"
)

// hops runs a hop from topic in to topic out: every message consumed from
// in is published to out, with its hop, as "out-" plus its UUID. The first
// delivery of every 97th message is nacked after its output is produced,
// and a second member joins the group halfway, so that outputs are
// produced again by redeliveries and by a rebalance. It returns how many
// times each output is in out, read committed, once both members left.
func hops(t *testing.T, exactlyOnce bool) (sent map[string]bool, outputs map[string]int) {
	brokers, _ := testenv.Brokers(t)
	in, out := "hop_in_"+testenv.Unique(), "hop_out_"+testenv.Unique()
	if err := EnsureTopics(context.Background(), brokers, nil, map[string]int32{in: 8, out: 8}, 1, nil); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	sent = publish(t, brokers, in, n)
	pub, err := NewPublisher(PublisherConfig{Brokers: brokers, Key: keyByMetadata})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	group := "hops_" + testenv.Unique()
	var mu sync.Mutex
	handled := map[string]bool{} // inputs whose output is produced and acked
	nacked := map[string]bool{}
	var wg sync.WaitGroup
	handle := func(msg *message.Message) {
		defer wg.Done()
		o := message.NewMessage("out-"+msg.UUID, msg.Payload)
		o.Metadata.Set("key", msg.Metadata.Get("key"))
		o.SetContext(CarryHop(context.Background(), msg.Context()))
		if err := pub.Publish(out, o); err != nil {
			msg.Nack() // a hop of an aborted transaction: it comes again
			return
		}
		i, _ := strconv.Atoi(msg.Metadata.Get("n"))
		mu.Lock()
		defer mu.Unlock()
		if i%97 == 0 && !nacked[msg.UUID] {
			nacked[msg.UUID] = true
			msg.Nack()
			return
		}
		handled[msg.UUID] = true
		msg.Ack()
	}
	consume := func(ch <-chan *message.Message) {
		for msg := range ch {
			wg.Add(1)
			go handle(msg)
		}
	}
	mod := func(c *SubscriberConfig) {
		c.ExactlyOnce = exactlyOnce
		c.MaxInFlight = 64
		c.NackBackoff = 10 * time.Millisecond
	}
	a := newSub(t, brokers, group, mod)
	cha, err := a.Subscribe(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	go consume(cha)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	waitFor(t, 60*time.Second, func() bool { return count() >= n/3 })
	b := newSub(t, brokers, group, mod)
	chb, err := b.Subscribe(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	go consume(chb)
	// Done when the group's offsets are at the end of every partition: an
	// ack counts for nothing when its transaction aborted, and the message
	// comes again.
	waitFor(t, 90*time.Second, func() bool { return count() == n && committedToEnd(t, brokers, group, in) })
	// Closing commits what was acked: the last transactions end.
	if err := a.Close(); err != nil {
		t.Error(err)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
	mu.Lock()
	if len(nacked) < n/97 {
		t.Errorf("%d messages nacked after producing, want at least %d", len(nacked), n/97)
	}
	mu.Unlock()
	return sent, readCommitted(t, brokers, out)
}

// committedToEnd reports whether group's committed offsets are at the end
// of every partition of topic.
func committedToEnd(t *testing.T, brokers []string, group, topic string) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testenv.Context(t, 10*time.Second)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		done = done && ok && c.At >= o.Offset
	})
	return done
}

// readCommitted counts the UUIDs of topic's records up to its last stable
// offset, as a consumer reading committed data sees them.
func readCommitted(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	idle := 0
	ctx := testenv.Context(t, 60*time.Second)
	for idle < 3 && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		records := fetches.Records()
		if len(records) == 0 {
			idle++
			continue
		}
		idle = 0
		for _, r := range records {
			for _, h := range r.Headers {
				if h.Key == UUIDHeader {
					got[string(h.Value)]++
				}
			}
		}
	}
	return got
}

// TestExactlyOnceHops: with ExactlyOnce, every input's output is in the
// output topic once, read committed, through nacks after producing and a
// rebalance; without it, the same run has duplicates, so the check can
// fail.
func TestExactlyOnceHops(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name        string
		exactlyOnce bool
	}{{"exactly_once", true}, {"at_least_once", false}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			sent, outputs := hops(t, mode.exactlyOnce)
			missing, dups := 0, 0
			for id := range sent {
				switch c := outputs["out-"+id]; {
				case c == 0:
					missing++
				case c > 1:
					dups += c - 1
				}
			}
			if len(outputs) != len(sent) {
				t.Errorf("%d distinct outputs for %d inputs", len(outputs), len(sent))
			}
			if missing != 0 {
				t.Errorf("%d inputs have no output", missing)
			}
			t.Logf("%s: %d inputs, %d duplicate outputs", mode.name, len(sent), dups)
			if mode.exactlyOnce && dups != 0 {
				t.Errorf("exactly once: %d duplicate outputs", dups)
			}
			if !mode.exactlyOnce && dups == 0 {
				t.Error(fmt.Errorf("at least once: no duplicate output, though messages were nacked after producing"))
			}
		})
	}
}
