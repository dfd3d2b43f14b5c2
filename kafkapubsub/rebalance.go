package kafkapubsub

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func (s *subscription) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range assigned[s.topic] {
		s.partitionLocked(id)
	}
	s.log.Info("partitions assigned", "partitions", assigned[s.topic])
}

// revoked runs when partitions go to another member (or the group is left):
// it waits for their messages in flight, commits what was acked, and lets
// the partitions go. Messages still in flight after DrainTimeout are given
// up on; the next owner consumes them again.
func (s *subscription) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	var parts []*partition
	for _, id := range revoked[s.topic] {
		if p := s.parts[id]; p != nil {
			p.startRevokingLocked()
			parts = append(parts, p)
		}
	}
	s.waitDrainedLocked(parts, time.Now().Add(s.cfg.DrainTimeout))
	s.mu.Unlock()

	s.commit(ctx, parts, true)

	s.mu.Lock()
	for _, p := range parts {
		p.cancel()
		delete(s.parts, p.id)
	}
	s.mu.Unlock()
	if len(parts) > 0 {
		s.log.Info("partitions revoked", "partitions", revoked[s.topic])
	}
}

// lost runs when the group dropped this member: nothing may be committed.
func (s *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if s.tx != nil {
		s.tx.fence()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range lost[s.topic] {
		if p := s.parts[id]; p != nil {
			p.startRevokingLocked()
			p.revoked = true
			p.cancel()
			delete(s.parts, id)
		}
	}
	s.log.Warn("partitions lost; their messages in flight will be consumed again", "partitions", lost[s.topic])
}

// waitDrainedLocked waits, with s.mu held, until the router holds none of
// the deliveries of parts (queued ones are dropped once the partitions are
// revoking) or the deadline passes.
func (s *subscription) waitDrainedLocked(parts []*partition, deadline time.Time) bool {
	t := time.AfterFunc(time.Until(deadline), func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	for {
		busy := 0
		for _, p := range parts {
			busy += p.inflight - p.queued
		}
		if busy == 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		s.cond.Wait()
	}
}

func (s *subscription) commitLoop() {
	defer close(s.commitDone)
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			s.mu.Lock()
			parts := make([]*partition, 0, len(s.parts))
			for _, p := range s.parts {
				parts = append(parts, p)
			}
			s.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.commit(ctx, parts, false)
			cancel()
		}
	}
}

// commit commits the acked offsets of parts that moved since their last
// commit, with the acked offsets above them (see acked.go). With final set,
// the partitions are marked revoked afterwards, under the same lock, so that
// no later commit can touch them.
func (s *subscription) commit(ctx context.Context, parts []*partition, final bool) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.tx != nil {
		s.commitTxn(ctx, parts, final)
		return
	}
	s.mu.Lock()
	points := s.pointsLocked(parts)
	s.mu.Unlock()
	if len(points) > 0 {
		s.commitPlain(ctx, parts, points, final)
	}
	if final {
		s.markRevoked(parts)
	}
}

// commitPlain commits points outside any transaction and records them as
// the partitions' last commit (see committed).
func (s *subscription) commitPlain(ctx context.Context, parts []*partition, points map[int32]commitPoint, final bool) {
	cerr := s.commitPoints(ctx, points)
	s.committed(parts, points, cerr == nil || final, cerr)
}

// markRevoked marks parts revoked, so that no later commit touches them.
func (s *subscription) markRevoked(parts []*partition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		p.revoked = true
	}
}

// pointsLocked returns the commit points of parts that moved since their
// last commit.
func (s *subscription) pointsLocked(parts []*partition) map[int32]commitPoint {
	points := map[int32]commitPoint{}
	for _, p := range parts {
		if c, ok := p.win.point(p.acked); ok && !p.revoked && (c.offset > p.committed || (c.offset == p.committed && c.metadata != p.committedMeta)) {
			points[p.id] = c
		}
	}
	return points
}

// committed records points as the partitions' last commit when keep is set
// (a failed commit is kept when the partitions leave: it is not retried),
// and logs cerr.
func (s *subscription) committed(parts []*partition, points map[int32]commitPoint, keep bool, cerr error) {
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		s.log.Warn("offset commit failed; it is retried at the next interval", "error", cerr)
	}
	if !keep {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		if c, ok := points[p.id]; ok && c.offset >= p.committed {
			p.committed, p.committedMeta = c.offset, c.metadata
		}
	}
}

// commitTxn is commit with ExactlyOnce: it ends the open transaction with
// the offsets of every partition here, not only of parts (a transaction
// holds the outputs of all of them), once every message that produced in
// it has settled. Without a transaction open, nothing was produced since
// the last one, and the offsets are committed as without ExactlyOnce. A
// transaction that cannot commit aborts, and every partition rewinds to its
// last commit (abortedLocked).
func (s *subscription) commitTxn(ctx context.Context, leaving []*partition, final bool) {
	open, abort := s.tx.stop(s.cfg.DrainTimeout)
	s.mu.Lock()
	parts := slices.Collect(maps.Values(s.parts))
	for _, p := range leaving {
		if s.parts[p.id] != p {
			parts = append(parts, p)
		}
	}
	points := s.pointsLocked(parts)
	s.mu.Unlock()
	aborted, unended := false, false
	switch {
	case open:
		ok, ended, err := s.endTxn(ctx, points, !abort)
		if ok {
			s.committed(parts, points, true, nil)
			break
		}
		aborted, unended = true, !ended
		msg := "transaction aborted; the messages in flight are consumed again from the last commit"
		if unended {
			msg = "transaction could not be ended; it is aborted at the next commit, and outputs wait until then"
		}
		s.log.Warn(msg, "error", err, "dirty", abort)
		s.mu.Lock()
		s.abortedLocked()
		s.mu.Unlock()
	case len(points) > 0:
		s.commitPlain(ctx, parts, points, final)
	}
	if final {
		s.markRevoked(leaving)
	}
	s.tx.resume(aborted, unended)
}

func (s *subscription) lag() []PartitionLag {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PartitionLag, 0, len(s.parts))
	for _, p := range s.parts {
		pos := p.win.commit.Offset
		if pos < 0 && len(p.win.entries) > 0 {
			pos = p.win.entries[0].offset
		}
		lag := int64(0)
		if pos >= 0 && p.hwm > pos {
			lag = p.hwm - pos
		}
		out = append(out, PartitionLag{Group: s.cfg.ConsumerGroup, Topic: s.topic, Partition: p.id, Lag: lag})
	}
	return out
}
