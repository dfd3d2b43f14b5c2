package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopic returns every record of topic, from the start to the end it has
// when called, as a consumer reading committed data sees them: records of
// aborted transactions are not among them. It first waits until no
// transaction is open on the topic (the last stable offset is the end), so
// that every record below the end is either committed or aborted.
func ReadTopic(t testing.TB, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	for {
		if ends, err = adm.ListEndOffsets(ctx, topic); err != nil {
			t.Fatalf("end offsets of %s: %v", topic, err)
		}
		stable, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatalf("last stable offsets of %s: %v", topic, err)
		}
		open := false
		ends.Each(func(o kadm.ListedOffset) {
			if s, ok := stable.Lookup(topic, o.Partition); !ok || s.Offset < o.Offset {
				open = true
			}
		})
		if !open {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("read %s: a transaction stayed open for a minute", topic)
		case <-time.After(200 * time.Millisecond):
		}
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			total += o.Offset
		}
	})
	if total == 0 {
		return nil
	}
	parts := map[string]map[int32]kgo.Offset{topic: {}}
	for p := range want {
		parts[topic][p] = kgo.NewOffset().AtStart()
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(parts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var out []*kgo.Record
	// A partition is read when its record at end-1 came; a partition
	// whose last offset is a transaction marker, which a consumer never
	// gets, when a few polls brought nothing more.
	done := map[int32]bool{}
	for idle := 0; len(done) < len(want) && idle < 4; {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fetches := reader.PollFetches(pctx)
		pcancel()
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %v (have %d records, offsets to %d)", topic, err, len(out), total)
		}
		idle++
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= want[r.Partition] {
				return
			}
			idle = 0
			out = append(out, r)
			if r.Offset == want[r.Partition]-1 {
				done[r.Partition] = true
			}
		})
	}
	return out
}
