package kafkapubsub

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kgo"
)

// window tracks the offsets of one partition that were handed out, and
// which of them are acked, to know the offset that is safe to commit: one past
// the last offset below which everything is acked.
type window struct {
	entries []windowEntry // increasing offsets; entries[head:] are pending
	head    int
	// commit is the offset that may be committed (one past the last acked
	// message of the contiguous prefix) with the leader epoch of that message.
	commit kgo.EpochOffset
}

type windowEntry struct {
	offset int64
	epoch  int32
	acked  bool
}

func newWindow() *window { return &window{commit: kgo.EpochOffset{Epoch: -1, Offset: -1}} }

// add registers an offset handed out; offsets come in increasing order.
func (w *window) add(offset int64, epoch int32) {
	if w.head > 1024 && w.head > len(w.entries)/2 {
		w.entries = append(w.entries[:0], w.entries[w.head:]...)
		w.head = 0
	}
	w.entries = append(w.entries, windowEntry{offset: offset, epoch: epoch})
}

// ack marks offset acked and advances the commit point. It reports whether
// the offset was pending.
func (w *window) ack(offset int64) bool {
	pending := w.entries[w.head:]
	i := sort.Search(len(pending), func(i int) bool { return pending[i].offset >= offset })
	if i == len(pending) || pending[i].offset != offset {
		return false
	}
	pending[i].acked = true
	for w.head < len(w.entries) && w.entries[w.head].acked {
		e := w.entries[w.head]
		w.commit = kgo.EpochOffset{Epoch: e.epoch, Offset: e.offset + 1}
		w.head++
	}
	return true
}

// pending is the number of offsets handed out and not yet acked.
func (w *window) pending() int {
	n := 0
	for _, e := range w.entries[w.head:] {
		if !e.acked {
			n++
		}
	}
	return n
}
