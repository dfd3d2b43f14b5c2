package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Exactly once (SubscriberConfig.ExactlyOnce). Each subscription's client
// is also a transactional producer. A handler's outputs, published with the
// consumed message's hop in their context (CarryHop), are produced by that
// client inside its open transaction; every CommitInterval the
// subscription ends the transaction with the offsets of the messages acked
// in it (TxnOffsetCommit, with the group's generation, so that a member
// that lost its partitions is fenced), and their outputs and offsets
// become visible together, to consumers that read committed.
//
// Before it ends a transaction it waits until every message that produced
// in it has been acked: a message acked is a message whose outputs are in
// the transaction that commits its offset. A message nacked after it
// produced, a commit refused, or partitions lost abort the transaction:
// its outputs are dropped by the broker, every message in flight is given
// up on (their later acks count for nothing), and consumption rewinds to
// the last committed offsets. The offsets acked above a commit travel in
// its metadata (acked.go), in the transaction too.

// hop ties a consumed message to its subscription's transaction.
type hop struct {
	sub *subscription
	d   *delivery
	gen int // the subscription's abort count when the message was sent
}

type hopKey struct{}

// CarryHop returns ctx with the hop of the message consumed with context
// from, if it has one: messages published with it join the transaction that
// commits that message's offset. It is a no-op when exactly once is off.
func CarryHop(ctx, from context.Context) context.Context {
	if h, ok := from.Value(hopKey{}).(*hop); ok {
		return context.WithValue(ctx, hopKey{}, h)
	}
	return ctx
}

func hopFrom(ctx context.Context) *hop {
	if ctx == nil {
		return nil
	}
	h, _ := ctx.Value(hopKey{}).(*hop)
	return h
}

// errStaleHop refuses the outputs of a message consumed before the last
// abort: it is consumed again, and its outputs come with that copy.
var errStaleHop = errors.New("the transaction of the consumed message was aborted; the message is consumed again")

// errUnended refuses outputs while the last transaction waits to be
// aborted: the message is consumed again once it is.
var errUnended = errors.New("the last transaction could not be ended yet (broker unreachable); the message is consumed again")

// txn is a subscription's transaction state.
type txn struct {
	mu        sync.Mutex
	cond      *sync.Cond
	open      bool               // begun, records produced in it
	producing int                // produces under way
	pending   map[*delivery]bool // produced in the open transaction, not settled yet
	dirty     bool               // it must abort
	ending    bool               // produces wait for the next transaction
	gen       int
	// unended: the last transaction could not be ended, not even as an
	// abort (the broker unreachable); the client is still in it. Produces
	// are refused until the next commit aborts it.
	unended bool
	topicID [16]byte // of the subscription's topic; used by commits only
}

func newTxn() *txn {
	t := &txn{pending: map[*delivery]bool{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// produce produces records in the open transaction, beginning one if
// needed, for the message of h.
func (s *subscription) produce(ctx context.Context, h *hop, records []*kgo.Record) error {
	t := s.tx
	t.mu.Lock()
	// A message already in the open transaction goes on producing in it:
	// the transaction cannot end before the message settles anyway.
	for t.ending && !t.pending[h.d] {
		t.cond.Wait()
	}
	if h.gen != t.gen || isClosed(h.d.part.gone) {
		// Consumed before an abort, or of a partition leaving: its offset
		// is not committed here, so its outputs must not be either.
		t.mu.Unlock()
		return errStaleHop
	}
	if t.unended {
		t.mu.Unlock()
		return errUnended
	}
	if !t.open {
		if err := s.client.BeginTransaction(); err != nil {
			t.mu.Unlock()
			return fmt.Errorf("begin a transaction: %w", err)
		}
		t.open = true
	}
	t.pending[h.d] = true
	t.producing++
	t.mu.Unlock()

	err := s.client.ProduceSync(ctx, records...).FirstErr()

	t.mu.Lock()
	t.producing--
	if err != nil {
		t.dirty = true // some of the records may be in it
	}
	t.cond.Broadcast()
	t.mu.Unlock()
	return err
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// settled takes d out of the open transaction; a message that produced in
// it and is not acked makes it abort.
func (t *txn) settled(d *delivery, acked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending[d] {
		delete(t.pending, d)
		if !acked {
			t.dirty = true
		}
		t.cond.Broadcast()
	}
}

// stop makes new produces wait and waits, up to timeout, until every
// message that produced in the open transaction has settled. It reports
// whether a transaction is open and whether it must abort.
func (t *txn) stop(timeout time.Duration) (open, abort bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ending = true
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer timer.Stop()
	for (t.producing > 0 || len(t.pending) > 0) && time.Now().Before(deadline) {
		t.cond.Wait()
	}
	if t.producing > 0 || len(t.pending) > 0 {
		t.dirty = true
	}
	return t.open, t.dirty
}

// fence makes the open transaction abort and refuses the hops of the
// messages sent so far: the group dropped the member, so nothing of what it
// consumed may commit.
func (t *txn) fence() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dirty = true
	t.gen++
	t.cond.Broadcast()
}

// resume starts the next transaction's produces; after an abort, the hops
// of the messages sent before it are refused. A transaction that could not
// be ended (unended) stays open, to be aborted at the next commit.
func (t *txn) resume(aborted, unended bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open, t.dirty, t.ending, t.unended = unended, unended, false, unended
	clear(t.pending)
	if aborted {
		t.gen++
	}
	t.cond.Broadcast()
}

// endTxn ends the open transaction: with the offsets of points when commit
// is set and they are accepted, else as an abort. It reports whether the
// transaction committed, and whether it ended at all: a transaction the
// broker could not be told to abort is still open in the client.
func (s *subscription) endTxn(ctx context.Context, points map[int32]commitPoint, commit bool) (committed, ended bool, err error) {
	if commit && len(points) > 0 {
		if err = s.txnCommitOffsets(ctx, points); err != nil {
			commit = false
		}
	}
	if eerr := s.client.EndTransaction(ctx, kgo.TransactionEndTry(commit)); eerr != nil {
		err = errors.Join(err, fmt.Errorf("end the transaction: %w", eerr))
		if !commit {
			return false, false, err
		}
		// Unconfirmed: abort, as franz-go's own session does, and
		// report nothing committed.
		if aerr := s.client.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			return false, false, errors.Join(err, fmt.Errorf("abort the transaction: %w", aerr))
		}
		return false, true, err
	}
	return commit, true, err
}

// txnCommitOffsets adds the offsets of points, with their metadata, to the
// open transaction. The group's member id and generation go with them, so
// that the broker refuses them from a member that is no longer the
// partitions' owner (KIP-447).
func (s *subscription) txnCommitOffsets(ctx context.Context, points map[int32]commitPoint) error {
	id, epoch, err := s.client.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("producer id: %w", err)
	}
	txnID := s.txnID
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, s.cfg.ConsumerGroup
	resp, err := add.RequestWith(ctx, s.client)
	if err != nil {
		return fmt.Errorf("add offsets to the transaction: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("add offsets to the transaction: %w", err)
	}
	member, gen := s.client.GroupMetadata()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, s.cfg.ConsumerGroup, id, epoch
	req.Generation, req.MemberID = gen, member
	if s.cfg.InstanceID != "" {
		req.InstanceID = kmsg.StringPtr(s.cfg.InstanceID + "-" + s.topic)
	}
	topicID, err := s.topicID(ctx)
	if err != nil {
		return err
	}
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic, rt.TopicID = s.topic, topicID // v6 names topics by id
	for p, c := range points {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, c.offset, c.epoch
		if c.metadata != "" {
			rp.Metadata = kmsg.StringPtr(c.metadata)
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	cresp, err := req.RequestWith(ctx, s.client)
	if err != nil {
		return fmt.Errorf("commit offsets in the transaction: %w", err)
	}
	for _, t := range cresp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("commit partition %d of %s in the transaction: %w", p.Partition, s.topic, err)
			}
		}
	}
	return nil
}

// topicID returns the id of the subscription's topic, looked up once.
func (s *subscription) topicID(ctx context.Context) ([16]byte, error) {
	if s.tx.topicID != ([16]byte{}) {
		return s.tx.topicID, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(s.topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, s.client)
	if err != nil {
		return [16]byte{}, fmt.Errorf("look up the id of %s: %w", s.topic, err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return [16]byte{}, fmt.Errorf("look up the id of %s: %w", s.topic, err)
		}
		s.tx.topicID = t.TopicID
	}
	return s.tx.topicID, nil
}

// abortedLocked gives up, after an abort, on every partition's messages in
// flight, as if the partitions were lost and assigned again, and asks run
// to rewind each to its last committed offset (or, never committed, to the
// first offset this subscription fetched of it).
func (s *subscription) abortedLocked() {
	for id, p := range s.parts {
		target := p.committed
		if target < 0 {
			target = p.first
		}
		if target >= 0 && !p.revoking {
			// A partition leaving is not rewound: its next owner
			// starts from its last commit.
			s.rewind[id] = kgo.EpochOffset{Epoch: -1, Offset: target}
		}
		p.startRevokingLocked()
		p.revoked = true
		p.cancel()
		delete(s.parts, id)
	}
	s.cond.Broadcast()
}
