package kafkapubsub

import (
	"context"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// delivery is one consumed record on its way through the router.
type delivery struct {
	part     *partition
	key      []byte
	payload  []byte
	uuid     string
	metadata message.Metadata
	headers  []kgo.RecordHeader
	offset   int64
	epoch    int32
	attempt  int
	queued   bool // waiting to be handed to the router (counted in part.queued)
}

func newDelivery(part *partition, r *kgo.Record) *delivery {
	d := &delivery{part: part, key: r.Key, payload: r.Value, offset: r.Offset, epoch: r.LeaderEpoch,
		metadata: make(message.Metadata, len(r.Headers)), headers: r.Headers}
	for _, h := range r.Headers {
		if h.Key == UUIDHeader {
			d.uuid = string(h.Value)
		} else {
			d.metadata[h.Key] = string(h.Value)
		}
	}
	if d.uuid == "" {
		// Produced outside Watermill: name it by its position, which is
		// stable across redeliveries.
		d.uuid = r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
	}
	return d
}

// send hands a delivery to the router as a fresh message; a message can be
// acked or nacked once, so a redelivery needs a new one.
func (s *subscription) send(d *delivery) {
	s.mu.Lock()
	if d.part.revoking {
		s.settleLocked(d, false)
		s.mu.Unlock()
		return
	}
	// From here on a revoke waits for the delivery: the router may take it.
	d.queued = false
	d.part.queued--
	s.mu.Unlock()
	msg := message.NewMessage(d.uuid, d.payload)
	if d.attempt == 0 {
		msg.Metadata = d.metadata // the first delivery owns it
	} else {
		// Handlers may have changed the metadata of the earlier delivery
		// (the poison queue marks it); a redelivery starts from the record.
		msg.Metadata = make(message.Metadata, len(d.headers))
		for _, h := range d.headers {
			if h.Key != UUIDHeader {
				msg.Metadata[h.Key] = string(h.Value)
			}
		}
	}
	// The message's context ends once it is acked or nacked, as Watermill
	// expects (work a handler started for it stops), or when its partition
	// goes away; its Position's Claim ends with the partition only.
	ctx, cancel := context.WithCancel(d.part.ctx)
	if s.tx != nil {
		s.tx.mu.Lock()
		gen := s.tx.gen
		s.tx.mu.Unlock()
		ctx = context.WithValue(ctx, hopKey{}, &hop{sub: s, d: d, gen: gen})
	}
	msg.SetContext(withPosition(ctx, &Position{Topic: s.topic, Partition: d.part.id, Offset: d.offset, Key: d.key, Claim: d.part.ctx, Leaving: d.part.gone}))
	select {
	case s.out <- msg:
	case <-s.closing:
		cancel()
		s.settle(d, false)
		return
	case <-d.part.gone:
		cancel()
		s.settle(d, false)
		return
	}
	s.waiters.Add(1)
	go s.await(d, msg, cancel)
}

func (s *subscription) await(d *delivery, msg *message.Message, cancel context.CancelFunc) {
	defer s.waiters.Done()
	defer cancel()
	select {
	case <-msg.Acked():
		s.settle(d, true)
	case <-msg.Nacked():
		s.nacked(d)
	case <-s.abandon:
		s.settle(d, false)
	}
}

// settle takes a delivery out of flight: acked, or given up on (its offset
// then stays uncommitted, so the message is consumed again later).
func (s *subscription) settle(d *delivery, acked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked(d, acked)
}

func (s *subscription) settleLocked(d *delivery, acked bool) {
	if s.tx != nil {
		s.tx.settled(d, acked)
	}
	if acked {
		d.part.win.ack(d.offset)
	}
	if d.queued {
		d.queued = false
		d.part.queued--
	}
	d.part.inflight--
	s.inflight--
	s.cond.Broadcast()
}

func (s *subscription) nacked(d *delivery) {
	if s.tx != nil {
		// Its outputs, if it produced any, are in the open transaction,
		// and its redelivery produces them again: the transaction aborts.
		s.tx.settled(d, false)
	}
	s.mu.Lock()
	if s.isClosing || d.part.revoking {
		s.settleLocked(d, false)
		s.mu.Unlock()
		return
	}
	d.attempt++
	d.queued = true
	d.part.queued++
	delay := s.cfg.NackBackoff << min(d.attempt-1, 16)
	if delay > s.cfg.MaxNackBackoff || delay <= 0 {
		delay = s.cfg.MaxNackBackoff
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.timers[t]; !ok {
			return // stopped by close, which settled d
		}
		delete(s.timers, t)
		s.redeliver = append(s.redeliver, d)
		s.cond.Broadcast()
	})
	s.timers[t] = d
	s.mu.Unlock()
}
