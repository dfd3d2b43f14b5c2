package claim

import (
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestClaimsAcrossBatchesAndStores claims copies of lines on a real
// MongoDB-wire server: concurrently (so that copies share a batch), and
// again from a second store, as another router or a restarted one would.
func TestClaimsAcrossBatchesAndStores(t *testing.T) {
	coll := testenv.Database(t).Collection(Collection)
	ctx := testenv.Context(t, time.Minute)
	line := func(order int64, ident int, fp string, offset int64) Line {
		return Line{OrderID: order, Ident: ident, Fingerprint: fp, Topic: "raw_order", Partition: 1, Offset: offset}
	}
	a, err := NewStore(coll, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// 50 lines, each sent twice at once with the same content and once
	// with other content: one conflict a line, against whichever copy came
	// first.
	var mu sync.Mutex
	conflicts := map[int64][]*Conflict{}
	var wg sync.WaitGroup
	for i := range int64(50) {
		for j, fp := range []string{"same", "same", "other"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := a.Check(ctx, line(i, 0, fp, 100*i+int64(j)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if c != nil {
					conflicts[i] = append(conflicts[i], c)
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for i := range int64(50) {
		cs := conflicts[i]
		want := 1
		if len(cs) > 0 && cs[0].First.Fingerprint == "other" {
			want = 2 // "other" came first: both "same" copies conflict
		}
		if len(cs) != want {
			t.Fatalf("line of order %d: %d conflicts, want %d: %+v", i, len(cs), want, cs)
		}
		for _, c := range cs {
			if c.First.Fingerprint == c.Copy.Fingerprint || c.First.Offset/100 != i || c.Copy.Position() == c.First.Position() {
				t.Fatalf("conflict %+v", c)
			}
		}
	}

	// Another store finds the claims: a copy with the first's content is a
	// redelivery, another is a conflict naming the first copy's position.
	b, err := NewStore(coll, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Check(ctx, line(1000, 2, "x", 5)); c != nil || err != nil {
		t.Fatalf("first copy: %v %v", c, err)
	}
	if c, err := b.Check(ctx, line(1000, 2, "x", 9)); c != nil || err != nil {
		t.Fatalf("a redelivery: %v %v", c, err)
	}
	c, err := b.Check(ctx, line(1000, 2, "y", 11))
	if err != nil || c == nil || c.First.Position() != "raw_order/1@5" || c.Copy.Position() != "raw_order/1@11" {
		t.Fatalf("a conflict: %+v %v", c, err)
	}
	// Line 3 of order 1000 and its product 3, open, are other lines.
	if c, err := b.Check(ctx, line(1000, 3, "z", 12)); c != nil || err != nil {
		t.Fatalf("another line: %v %v", c, err)
	}
	open := line(1000, 2, "w", 13)
	open.Open = true
	if c, err := b.Check(ctx, open); c != nil || err != nil {
		t.Fatalf("an open line: %v %v", c, err)
	}
	b.Close()
	if _, err := b.Check(ctx, line(1000, 4, "x", 14)); !failure.IsUnavailable(err) {
		t.Fatalf("a closed store: %v", err)
	}
}

// TestStoreRemembersItsNewestClaims: a copy of a line the store claimed or
// read lately is answered from memory, as an aborted transaction's rewind
// needs; an older one goes to the server. The claims are deleted behind the
// store's back so that the two answers differ.
func TestStoreRemembersItsNewestClaims(t *testing.T) {
	coll := testenv.Database(t).Collection(Collection)
	ctx := testenv.Context(t, time.Minute)
	s, err := NewStore(coll, Config{Remember: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	line := func(order int64, fp string, offset int64) Line {
		return Line{OrderID: order, Fingerprint: fp, Topic: "raw_order", Offset: offset}
	}
	for i := range int64(3) {
		if c, err := s.Check(ctx, line(i+1, "x", i)); c != nil || err != nil {
			t.Fatalf("first copy: %v %v", c, err)
		}
	}
	if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	// Order 3's line is remembered: its other content is a conflict.
	c, err := s.Check(ctx, line(3, "y", 10))
	if err != nil || c == nil || c.First.Position() != "raw_order/0@2" {
		t.Fatalf("a remembered line: %+v %v", c, err)
	}
	// Order 1's is not (two are remembered): the server has no claim now.
	if c, err := s.Check(ctx, line(1, "y", 11)); c != nil || err != nil {
		t.Fatalf("a forgotten line: %+v %v", c, err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("claims on the server: %d %v, want the forgotten line's new claim", n, err)
	}
}
