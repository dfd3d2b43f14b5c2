// Package poison reads the poison queue and replays what is in it: each
// poisoned message goes back to the topic it came from, once its cause is
// fixed. Replay is at least once and idempotent, like the rest of the
// pipeline: a replayed message keeps its UUID and content, and a line that
// passes a stage twice is counted once.
package poison

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/middleware"
)

// ReplayCollection records which poisoned messages were replayed.
const ReplayCollection = "poison_replays"

// ReplayedFromKey is set on a replayed message: the poison topic, partition
// and offset it was replayed from.
const ReplayedFromKey = "replayed_from"

// Entry is one poisoned message.
type Entry struct {
	// ID is "<poison topic>/<partition>/<offset>".
	ID        string            `json:"id"`
	UUID      string            `json:"uuid"`
	Key       string            `json:"key"`
	Reason    string            `json:"reason"`
	Kind      string            `json:"kind"`
	Topic     string            `json:"topic"`
	Handler   string            `json:"handler"`
	Group     string            `json:"group"`
	Partition string            `json:"partition"`
	Offset    string            `json:"offset"`
	Time      string            `json:"time"`
	Payload   []byte            `json:"payload"`
	Metadata  map[string]string `json:"metadata"`
	// Replayed is when the entry was replayed, if it was.
	Replayed *time.Time `json:"replayed,omitempty"`
}

// Store reads the poison queue from Kafka and the replay marks from MongoDB.
type Store struct {
	Brokers []string
	Opts    []kgo.Opt
	Marks   *mongo.Collection
}

// List returns every entry of the poison topic, oldest first per partition.
func (s *Store) List(ctx context.Context, topic string) ([]Entry, error) {
	recs, err := readAll(ctx, s.Brokers, s.Opts, topic)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		e := Entry{
			ID:       fmt.Sprintf("%s/%d/%d", topic, r.Partition, r.Offset),
			Key:      string(r.Key),
			Payload:  r.Value,
			Metadata: map[string]string{},
		}
		for _, h := range r.Headers {
			if h.Key == kafkapubsub.UUIDHeader {
				e.UUID = string(h.Value)
			} else {
				e.Metadata[h.Key] = string(h.Value)
			}
		}
		m := e.Metadata
		e.Reason, e.Kind, e.Topic, e.Handler = m[middleware.ReasonKey], m[middleware.KindKey], m[middleware.TopicKey], m[middleware.HandlerKey]
		e.Group, e.Partition, e.Offset, e.Time = m[middleware.GroupKey], m[middleware.PartitionKey], m[middleware.OffsetKey], m[middleware.TimeKey]
		if k, ok := m[middleware.KeyKey]; ok && k != "" {
			e.Key = k
		}
		out = append(out, e)
	}
	if s.Marks != nil && len(out) > 0 {
		ids := make([]string, len(out))
		for i, e := range out {
			ids[i] = e.ID
		}
		cur, err := s.Marks.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return nil, fmt.Errorf("read replay marks: %w", err)
		}
		var marks []struct {
			ID string    `bson:"_id"`
			At time.Time `bson:"replayed_at"`
		}
		if err := cur.All(ctx, &marks); err != nil {
			return nil, fmt.Errorf("read replay marks: %w", err)
		}
		at := map[string]time.Time{}
		for _, m := range marks {
			at[m.ID] = m.At
		}
		for i := range out {
			if t, ok := at[out[i].ID]; ok {
				out[i].Replayed = &t
			}
		}
	}
	return out, nil
}

// Filter selects entries. Each term is field=value: handler, topic, group,
// kind, key (the order id) or id match exactly; reason matches a substring.
type Filter []string

// ParseFilter checks the terms of a filter.
func ParseFilter(terms []string) (Filter, error) {
	for _, t := range terms {
		field, _, ok := strings.Cut(t, "=")
		if !ok || !slices.Contains([]string{"handler", "topic", "group", "kind", "key", "order", "id", "reason"}, field) {
			return nil, fmt.Errorf("filter %q: want field=value with field one of handler, topic, group, kind, key, order, id, reason", t)
		}
	}
	return Filter(terms), nil
}

// Match reports whether e satisfies every term.
func (f Filter) Match(e Entry) bool {
	for _, t := range f {
		field, value, _ := strings.Cut(t, "=")
		var ok bool
		switch field {
		case "handler":
			ok = e.Handler == value
		case "topic":
			ok = e.Topic == value
		case "group":
			ok = e.Group == value
		case "kind":
			ok = e.Kind == value
		case "key", "order":
			ok = e.Key == value
		case "id":
			ok = e.ID == value
		case "reason":
			ok = strings.Contains(e.Reason, value)
		}
		if !ok {
			return false
		}
	}
	return true
}

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Replayed, Skipped int
	// Excerpts are the entries that hold only an excerpt of a line too
	// large to poison whole (see middleware.SizeKey): they are never
	// replayed, since that would publish the excerpt.
	Excerpts []Entry
}

// Replay publishes entries back to their original topics, with their key,
// UUID, payload and original metadata, and marks each as replayed once the
// broker has it. Entries already replayed are skipped unless force is set.
// A crash between the publish and the mark replays the entry again later,
// which the pipeline absorbs: at least once, counted once.
func (s *Store) Replay(ctx context.Context, entries []Entry, force bool) (ReplayResult, error) {
	var res ReplayResult
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Brokers...)}, s.Opts...)...)
	if err != nil {
		return res, fmt.Errorf("connect to kafka: %w", err)
	}
	defer client.Close()
	for _, e := range entries {
		if e.Metadata[middleware.SizeKey] != "" {
			res.Excerpts = append(res.Excerpts, e)
			continue
		}
		if e.Replayed != nil && !force {
			res.Skipped++
			continue
		}
		if e.Topic == "" {
			return res, fmt.Errorf("entry %s has no original topic", e.ID)
		}
		rec := &kgo.Record{Topic: e.Topic, Key: []byte(e.Key), Value: e.Payload}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: kafkapubsub.UUIDHeader, Value: []byte(e.UUID)})
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			if !strings.HasSuffix(k, "_poisoned") && k != ReplayedFromKey {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(e.Metadata[k])})
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: ReplayedFromKey, Value: []byte(e.ID)})
		if err := client.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return res, fmt.Errorf("replay %s to %s: %w", e.ID, e.Topic, err)
		}
		if s.Marks != nil {
			// Insert-only: a forced second replay keeps the first mark.
			_, err := s.Marks.InsertOne(ctx, bson.D{{Key: "_id", Value: e.ID}, {Key: "replayed_at", Value: time.Now().UTC()}, {Key: "to", Value: e.Topic}})
			if err != nil && !mongo.IsDuplicateKeyError(err) {
				return res, fmt.Errorf("mark %s replayed (it was published; a new replay would publish it again): %w", e.ID, err)
			}
		}
		res.Replayed++
	}
	return res, nil
}

// readAll reads a topic from the start to its current end.
func readAll(ctx context.Context, brokers []string, opts []kgo.Opt, topic string) ([]*kgo.Record, error) {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to kafka: %w", err)
	}
	defer client.Close()
	ends, err := endOffsets(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	parts := map[int32]kgo.Offset{}
	remaining := 0
	for p, end := range ends {
		if end > 0 {
			parts[p] = kgo.NewOffset().AtStart()
			remaining++
		}
	}
	if remaining == 0 {
		return nil, nil
	}
	client.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts})
	var out []*kgo.Record
	done := map[int32]bool{}
	for remaining > 0 {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %s: %w", topic, ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] || done[r.Partition] {
				return
			}
			out = append(out, r)
			if r.Offset == ends[r.Partition]-1 {
				done[r.Partition] = true
				remaining--
			}
		})
	}
	slices.SortStableFunc(out, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

func endOffsets(ctx context.Context, client *kgo.Client, topic string) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	if len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		return map[int32]int64{}, nil // no such topic: nothing poisoned yet
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("list offsets of %s partition %d: error code %d", topic, p.Partition, p.ErrorCode)
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}
