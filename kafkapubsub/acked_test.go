package kafkapubsub

import (
	"strings"
	"testing"
)

func TestAckedMetadataRoundTrip(t *testing.T) {
	w := newWindow()
	for o := int64(100); o < 120; o++ {
		w.add(o, 3)
	}
	for _, o := range []int64{100, 101, 103, 104, 105, 107, 119} {
		w.ack(o)
	}
	c, ok := w.point(nil)
	if !ok || c.offset != 102 || c.epoch != 3 || c.metadata != "acked:1-3,5,17" {
		t.Fatalf("point %+v", c)
	}
	got := decodeAcked(c.offset, c.metadata)
	for _, o := range []int64{103, 104, 105, 107, 119} {
		if !got[o] {
			t.Errorf("offset %d not read back as acked", o)
		}
	}
	if len(got) != 5 {
		t.Fatalf("read back %v", got)
	}

	// Nothing acked yet, one held message first: the point is that message.
	w = newWindow()
	w.add(7, 1)
	w.add(8, 1)
	w.ack(8)
	if c, _ := w.point(nil); c.offset != 7 || c.metadata != "acked:1" {
		t.Fatalf("point %+v", c)
	}
	if _, ok := newWindow().point(nil); ok {
		t.Fatal("an empty window has a point")
	}
}

func TestAckedMetadataStaysUnderKafkasLimitAndIgnoresOthers(t *testing.T) {
	var rel []int64
	for i := int64(1); i < 5000; i += 2 { // no runs: the longest encoding
		rel = append(rel, i)
	}
	m := encodeAcked(rel)
	if len(m) > maxAckedMetadata || !strings.HasPrefix(m, ackedPrefix) {
		t.Fatalf("metadata of %d bytes", len(m))
	}
	if got := decodeAcked(0, m); len(got) == 0 || len(got) >= len(rel) {
		t.Fatalf("cut metadata read back as %d offsets", len(got))
	}
	for _, other := range []string{"", "some other client's note", "acked:x", "acked:5-2", "acked:0"} {
		if got := decodeAcked(10, other); got != nil {
			t.Errorf("%q read as %v", other, got)
		}
	}
}

func TestAckedMetadataKeepsThePreviousOwnersOffsetsNotFetchedYet(t *testing.T) {
	w := newWindow()
	w.add(10, 1) // fetched, held; 12 and 13 were acked by the previous owner
	c, _ := w.point(map[int64]bool{12: true, 13: true, 5: true})
	if c.offset != 10 || c.metadata != "acked:2-3" {
		t.Fatalf("point %+v", c)
	}
}
