package claim

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/status"
)

// BenchmarkLineWrites puts the cost of a claim beside that of the status
// record every line gets at the same stage, on the same server, with 64
// lines in flight as a busy validate handler has: run both in one go and
// read the ratio.
func BenchmarkLineWrites(b *testing.B) {
	db := testenv.Database(b)
	var next atomic.Int64
	b.Run("status_record", func(b *testing.B) {
		r, err := status.NewRecorder(db.Collection(status.Collection), status.RecorderConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		b.SetParallelism(32) // 64 goroutines on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := next.Add(1)
				rec := status.Record{OrderID: id, Line: 0, Lines: 1, Status: status.Validated, Handler: "validate", Topic: "raw_order"}
				if err := r.Record(context.Background(), rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("claim", func(b *testing.B) {
		s, err := NewStore(db.Collection(Collection), Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := next.Add(1)
				if c, err := s.Check(context.Background(), Line{OrderID: id, Fingerprint: "f", Topic: "raw_order", Offset: id}); c != nil || err != nil {
					b.Error(c, err)
					return
				}
			}
		})
	})
}

// BenchmarkRedeliveredLines is the cost of a claim for a copy of a line
// already claimed, as every line replayed after a crash or an aborted
// transaction is: from the store that claimed it (an abort's rewind, in
// the same process) and from a new one (a restarted router). Compare with
// BenchmarkLineWrites/claim, a first copy.
func BenchmarkRedeliveredLines(b *testing.B) {
	coll := testenv.Database(b).Collection(Collection)
	first, err := NewStore(coll, Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer first.Close()
	const lines = 10000
	var runs atomic.Int64
	claimAll := func(b *testing.B, s *Store, from int64, n int) {
		var next atomic.Int64
		b.SetParallelism(32) // 64 lines in flight on 2 cores
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := from + next.Add(1)%int64(n)
				if c, err := s.Check(context.Background(), Line{OrderID: id, Fingerprint: "f", Topic: "raw_order", Offset: id}); c != nil || err != nil {
					b.Error(c, err)
					return
				}
			}
		})
	}
	// prepare has the first store claim lines of their own for a run.
	prepare := func(b *testing.B) int64 {
		b.StopTimer()
		defer b.StartTimer()
		from := runs.Add(1) * 1e9
		var wg sync.WaitGroup
		for w := range int64(64) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := from + w; id < from+lines; id += 64 {
					if _, err := first.Check(context.Background(), Line{OrderID: id, Fingerprint: "f", Topic: "raw_order", Offset: id}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return from
	}
	b.Run("same_store", func(b *testing.B) {
		from := prepare(b)
		claimAll(b, first, from, lines)
	})
	b.Run("new_store", func(b *testing.B) {
		from := prepare(b)
		s, err := NewStore(coll, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		claimAll(b, s, from, lines)
	})
}
