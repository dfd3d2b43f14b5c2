package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Relay runs the ceiling's hops: for each consecutive pair of topics, a
// consumer group member that produces every record it reads, unchanged, to
// the next topic, and commits what the broker has acknowledged. It uses the
// settings measured fastest on the embedded broker: batched asynchronous
// producing without compression, 256 KiB fetches per partition, and commits
// of marked records. It runs until ctx ends.
func Relay(ctx context.Context, brokers []string, opts []kgo.Opt, topics []string, group string) error {
	if len(topics) < 2 {
		return fmt.Errorf("relay: need at least two topics, got %v", topics)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(topics))
	for i := 0; i+1 < len(topics); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hop(ctx, brokers, opts, topics[i], topics[i+1], fmt.Sprintf("%s-%d", group, i)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func hop(ctx context.Context, brokers []string, opts []kgo.Opt, from, to, group string) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(from),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxPartitionBytes(256 << 10),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(200_000),
		kgo.DefaultProduceTopic(to),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("relay %s to %s: %w", from, to, err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachRecord(func(r *kgo.Record) {
			out := &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}
			cl.Produce(ctx, out, func(_ *kgo.Record, err error) {
				if err == nil {
					cl.MarkCommitRecords(r)
				}
			})
		})
	}
}
