package kafkapubsub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A partition's committed offset is the first message not acked: a message
// held long (a line waiting for its order's other lines) keeps it back while
// the messages after it are acked. Without more, a partition's next owner
// (after a rebalance or a crash) processes those messages again, and their
// outputs, partner deliveries among them, happen twice. So each commit
// carries, in the offset's metadata, the offsets above it that are acked,
// and a partition's new owner acks those at once instead of handing them to
// the router.
//
// The metadata reads "acked:" and offsets relative to the committed one,
// runs as "a-b", e.g. "acked:1-40,42". Kafka keeps up to
// offset.metadata.max.bytes (4 KiB by default) of it; a longer set is cut,
// and the offsets cut are processed again, as without it.

const (
	ackedPrefix = "acked:"
	// maxAckedMetadata stays under Kafka's default offset.metadata.max.bytes.
	maxAckedMetadata = 3500
)

// commitPoint is what one partition's commit says.
type commitPoint struct {
	offset   int64
	epoch    int32
	metadata string
}

// point returns what a commit of the window would say, and false when
// nothing was handed out. inherited holds offsets the partition's previous
// owner acked that this window has not reached yet: they still count, so
// that a crash before they come does not forget them.
func (w *window) point(inherited map[int64]bool) (commitPoint, bool) {
	base := w.commit.Offset
	epoch := w.commit.Epoch
	pending := w.entries[w.head:]
	if base < 0 {
		if len(pending) == 0 {
			return commitPoint{}, false
		}
		base, epoch = pending[0].offset, -1
	}
	var rel []int64
	for _, e := range pending {
		if e.acked {
			rel = append(rel, e.offset-base)
		}
	}
	if len(inherited) > 0 {
		// Not fetched yet, so none of them is in the window.
		for o := range inherited {
			if o > base {
				rel = append(rel, o-base)
			}
		}
		slices.Sort(rel)
	}
	return commitPoint{offset: base, epoch: epoch, metadata: encodeAcked(rel)}, true
}

// encodeAcked writes increasing relative offsets as runs, cut to
// maxAckedMetadata.
func encodeAcked(rel []int64) string {
	if len(rel) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(ackedPrefix)
	for i := 0; i < len(rel); {
		j := i
		for j+1 < len(rel) && rel[j+1] == rel[j]+1 {
			j++
		}
		run := strconv.FormatInt(rel[i], 10)
		if j > i {
			run += "-" + strconv.FormatInt(rel[j], 10)
		}
		if b.Len()+len(run)+1 > maxAckedMetadata {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(run)
		i = j + 1
	}
	return b.String()
}

// decodeAcked reads the acked offsets of a commit at base. Metadata it does
// not know (written by another client) means none.
func decodeAcked(base int64, metadata string) map[int64]bool {
	rest, ok := strings.CutPrefix(metadata, ackedPrefix)
	if !ok || base < 0 {
		return nil
	}
	out := map[int64]bool{}
	for _, run := range strings.Split(rest, ",") {
		from, to, isRun := strings.Cut(run, "-")
		a, err := strconv.ParseInt(from, 10, 64)
		if err != nil || a <= 0 {
			return nil
		}
		b := a
		if isRun {
			if b, err = strconv.ParseInt(to, 10, 64); err != nil || b < a || b-a > 1<<20 {
				return nil
			}
		}
		for o := a; o <= b; o++ {
			out[base+o] = true
		}
	}
	return out
}

// commitPoints commits each partition's point with its metadata, through
// the client's own commit (which knows the group's generation and the
// topic's id), the metadata set just before the request goes.
func (s *subscription) commitPoints(ctx context.Context, points map[int32]commitPoint) error {
	offsets := make(map[int32]kgo.EpochOffset, len(points))
	for id, c := range points {
		offsets[id] = kgo.EpochOffset{Epoch: c.epoch, Offset: c.offset}
	}
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				p := &req.Topics[i].Partitions[j]
				if c, ok := points[p.Partition]; ok && c.metadata != "" {
					p.Metadata = kmsg.StringPtr(c.metadata)
				}
			}
		}
		return nil
	})
	var failed error
	s.client.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = fmt.Errorf("commit offsets of %s: %w", s.topic, err)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						delete(points, p.Partition)
						if failed == nil {
							failed = fmt.Errorf("commit partition %d of %s: %w", p.Partition, s.topic, err)
						}
					}
				}
			}
		})
	return failed
}

// loadAcked reads, for partitions newly consumed here, the offsets their
// last commit says are acked, so that run skips them.
func (s *subscription) loadAcked(ctx context.Context, ids []int32) {
	resps, err := kadm.NewClient(s.client).FetchOffsets(ctx, s.cfg.ConsumerGroup)
	if err == nil {
		err = resps.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	skipped := 0
	for _, id := range ids {
		p := s.partitionLocked(id)
		p.ackedLoaded = true
		if err != nil {
			continue
		}
		if r, ok := resps.Lookup(s.topic, id); ok && r.Err == nil {
			p.acked = decodeAcked(r.At, r.Metadata)
			skipped += len(p.acked)
		}
	}
	if err != nil {
		s.log.Warn("could not read the acked offsets of the last commits; messages acked by the previous owner may be processed again", "error", err)
	} else if skipped > 0 {
		s.log.Info("messages acked by the partitions' previous owner are skipped", "partitions", ids, "messages", skipped)
	}
}
