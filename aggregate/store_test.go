package aggregate

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestCheckpointsRestoreTheChainAndArePruned writes checkpoints of a
// partition as two owners would, one after the other, and checks that a
// restore gets the newest state with the lines counted along its chain,
// and that pruning keeps what a restore needs.
func TestCheckpointsRestoreTheChainAndArePruned(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	spec := locationSpec()
	spec.Lateness = 10 * time.Second
	cfg := config.AggregateConfig{Collection: "location_product_count"}
	first := NewStore(db, spec, cfg)
	got, err := first.restore(ctx, []int32{3})
	if err != nil {
		t.Fatal(err)
	}
	r := got[3]
	if r.chain.seq != 0 || len(r.state.groups) != 0 {
		t.Fatalf("a partition never checkpointed: %+v", r)
	}
	// The first owner counts 30 lines, a second apart, a checkpoint each.
	write := func(s *Store, r *restored, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := r.state.Apply(line(int64(i), 0, 1, 10, int64(i%4), t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Fatal(err)
			}
			r.state.Advance()
			d := r.state.Take()
			r.chain.seq++
			if err := s.writeCheckpoints(ctx, []*pendingCheckpoint{{partition: 3, chain: r.chain, from: int64(i), to: int64(i), state: r.state.Snapshot(), seen: d.Seen}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(first, &r, 0, 30)
	// A second owner takes the partition over and counts 10 more.
	second := NewStore(db, spec, cfg)
	got, err = second.restore(ctx, []int32{3})
	if err != nil {
		t.Fatal(err)
	}
	r2 := got[3]
	if r2.chain.seq != 30 || r2.chain.baseLineage != r.chain.lineage {
		t.Fatalf("restored chain %+v, want seq 30 from lineage %s", r2.chain, r.chain.lineage)
	}
	for i := 20; i < 30; i++ { // within the lateness: known for copies
		if v, err := r2.state.Apply(line(int64(i), 0, 1, 10, int64(i%4), t0.Add(time.Duration(i)*time.Second))); err != nil || v != Duplicate {
			t.Fatalf("line %d after the restore: %v %v, want a duplicate", i, v, err)
		}
	}
	write(second, &r2, 30, 40)
	total := int64(0)
	for _, g := range r2.state.Changed() {
		total += g.Values[0]
	}
	if total != 40 {
		t.Fatalf("after the second owner: %d lines, want 40", total)
	}
	// The second owner prunes what it read and wrote: only checkpoints whose
	// lines are past the lateness of its newest go, never the newest.
	n, err := second.prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left, err := db.Collection(CheckpointCollection).CountDocuments(ctx, bson.D{{Key: "aggregate", Value: spec.Name}})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || left+int64(n) != 40 || left < 11 {
		t.Fatalf("pruned %d of 40 checkpoints, %d left: want the old ones gone and the last 11 s kept", n, left)
	}
	// A third owner restores from what is left to the same state.
	got, err = NewStore(db, spec, cfg).restore(ctx, []int32{3})
	if err != nil {
		t.Fatal(err)
	}
	r3 := got[3]
	for i := 30; i < 40; i++ {
		if v, _ := r3.state.Apply(line(int64(i), 0, 1, 10, int64(i%4), t0.Add(time.Duration(i)*time.Second))); v != Duplicate {
			t.Fatalf("line %d after pruning and a restore: counted again", i)
		}
	}
	total = 0
	for _, g := range r3.state.Changed() {
		total += g.Values[0]
	}
	if total != 40 {
		t.Fatalf("restored after pruning: %d lines, want 40", total)
	}
}

func TestSeenLinesPackAndUnpack(t *testing.T) {
	lines := []SeenLine{{LineID{Order: 11100, Line: 1}, t0.UnixMicro()}, {LineID{Order: 7, Line: 1448}, t0.UnixMicro() - 5}, {LineID{Order: 1 << 40, Line: 0}, 0}}
	got, err := unpackSeen(packSeen(lines))
	if err != nil || len(got) != len(lines) {
		t.Fatalf("unpacked %v, %v", got, err)
	}
	for i := range lines {
		if got[i] != lines[i] {
			t.Fatalf("line %d: %+v, want %+v", i, got[i], lines[i])
		}
	}
	if _, err := unpackSeen([]byte{0x80}); err == nil {
		t.Fatal("a truncated value unpacked")
	}
}
