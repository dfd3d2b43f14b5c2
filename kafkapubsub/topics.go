package kafkapubsub

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EnsureTopics creates the topics that do not exist yet, with the given
// partition counts, replication factor and topic configs (such as
// min.insync.replicas; nil for the broker's defaults). An existing topic is left as it is, even when it has a
// different partition count (changing it would move keys between
// partitions); ExistingPartitions tells what it has.
func EnsureTopics(ctx context.Context, brokers []string, opts []kgo.Opt, partitions map[string]int32, replication int16, configs map[string]string) error {
	if len(partitions) == 0 {
		return nil
	}
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("connect to kafka: %w", err)
	}
	defer client.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	for name, n := range partitions {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic = name
		t.NumPartitions = n
		t.ReplicationFactor = replication
		for k, v := range configs {
			c := kmsg.NewCreateTopicsRequestTopicConfig()
			c.Name, c.Value = k, kmsg.StringPtr(v)
			t.Configs = append(t.Configs, c)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// ExistingPartitions returns the partition count of each topic that exists.
func ExistingPartitions(ctx context.Context, brokers []string, opts []kgo.Opt, topics ...string) (map[string]int32, error) {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	defer client.Close()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, name := range topics {
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("read topic metadata: %w", err)
	}
	out := map[string]int32{}
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 && t.Topic != nil {
			out[*t.Topic] = int32(len(t.Partitions))
		}
	}
	return out, nil
}
