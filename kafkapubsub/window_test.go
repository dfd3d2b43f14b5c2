package kafkapubsub

import (
	"math/rand/v2"
	"testing"
)

func TestWindowCommitsOnlyContiguousAcks(t *testing.T) {
	w := newWindow()
	for off := int64(10); off < 15; off++ {
		w.add(off, 3)
	}
	if w.commit.Offset != -1 {
		t.Fatalf("commit before any ack: %v", w.commit)
	}
	w.ack(12)
	w.ack(11)
	if w.commit.Offset != -1 {
		t.Fatalf("committed past unacked offset 10: %v", w.commit)
	}
	w.ack(10)
	if w.commit.Offset != 13 || w.commit.Epoch != 3 {
		t.Fatalf("commit %v, want 13", w.commit)
	}
	if w.ack(10) || w.ack(99) {
		t.Fatal("ack of an unknown or settled offset reported pending")
	}
	if w.pending() != 2 {
		t.Fatalf("pending %d", w.pending())
	}
}

func TestWindowRandomAckOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := newWindow()
	var offs []int64
	next := int64(0)
	for round := 0; round < 200; round++ {
		for range rng.IntN(50) {
			next += 1 + int64(rng.IntN(3)) // gaps, as compaction leaves
			w.add(next, 1)
			offs = append(offs, next)
		}
		rng.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
		k := rng.IntN(len(offs) + 1)
		for _, o := range offs[:k] {
			w.ack(o)
		}
		offs = offs[k:]
		// Every pending offset is at or above the commit point.
		for _, o := range offs {
			if w.commit.Offset > o {
				t.Fatalf("commit %d is past pending offset %d", w.commit.Offset, o)
			}
		}
		if len(offs) == 0 && w.commit.Offset != next+1 && next > 0 {
			t.Fatalf("all acked but commit %d, want %d", w.commit.Offset, next+1)
		}
	}
}
