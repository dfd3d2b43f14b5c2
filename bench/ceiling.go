package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/order"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ceiling pushes lines through three relay hops and measures lines/s from
// the first produce to the last record on the last topic.
func (b *bench) ceiling(ctx context.Context, lines int) (float64, error) {
	b.runSeq++
	prefix := fmt.Sprintf("bench%d_ceiling_%d", os.Getpid(), b.runSeq)
	topics := []string{prefix + "_0", prefix + "_1", prefix + "_2", prefix + "_3"}
	if err := b.createTopics(ctx, topics...); err != nil {
		return 0, err
	}
	values, keys := sampleLines(lines)
	relay, err := b.child(ctx, "bench-relay", "--brokers", strings.Join(b.brokers, ","), "--topics", strings.Join(topics, ","), "--group", prefix)
	if err != nil {
		return 0, err
	}
	defer relay.stop()
	if err := b.waitGroups(ctx, prefix, 3); err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(200_000)}, b.kopts...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := range values {
			cl.Produce(ctx, &kgo.Record{Topic: topics[0], Key: keys[i], Value: values[i]}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			})
		}
	}()
	for {
		n, err := b.endOffsets(ctx, cl, topics[3])
		if err != nil {
			return 0, err
		}
		if n >= int64(lines) {
			return float64(lines) / time.Since(start).Seconds(), nil
		}
		select {
		case err := <-errc:
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-relay.exited:
			return 0, fmt.Errorf("relay exited: %s", relay.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func sortedTopics(cfg *config.Config) []string {
	var out []string
	for t := range cfg.Topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (b *bench) createTopics(ctx context.Context, topics ...string) error {
	want := map[string]config.TopicConfig{}
	for _, t := range topics {
		want[t] = config.TopicConfig{Partitions: b.opts.Partitions}
	}
	k, err := kafkaclient.New(b.cfg.Kafka, false, b.log)
	if err != nil {
		return err
	}
	return k.EnsureTopics(ctx, want)
}

func (b *bench) endOffsets(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < int32(b.opts.Partitions); p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			n += p.Offset
		}
	}
	return n, nil
}

// waitGroups waits until the relay's n consumer groups have members.
func (b *bench) waitGroups(ctx context.Context, prefix string, n int) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.brokers...)}, b.kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		for i := range n {
			req.Groups = append(req.Groups, fmt.Sprintf("%s-%d", prefix, i))
		}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			stable := 0
			for _, g := range resp.Groups {
				if g.State == "Stable" && len(g.Members) > 0 {
					stable++
				}
			}
			if stable == n {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("relay groups did not become stable")
}

// sampleLines encodes lines of random orders, for the ceiling to carry the
// same bytes the pipeline does.
func sampleLines(n int) (values, keys [][]byte) {
	ds, _ := metastore.SampleDataset()
	var cat order.Catalog
	for _, p := range ds.Products {
		cat.ProductIDs = append(cat.ProductIDs, p.Value.ProductID)
	}
	for _, l := range ds.Locations {
		cat.LocationIDs = append(cat.LocationIDs, l.Value.LocationID)
	}
	gen, _ := order.NewGenerator(cat, 0, 1)
	for id := int64(1); len(values) < n; id++ {
		for _, l := range order.Flatten(gen.Order(id)) {
			if len(values) == n {
				break
			}
			values = append(values, order.Encode(l))
			keys = append(keys, []byte(l.Key()))
		}
	}
	return values, keys
}
