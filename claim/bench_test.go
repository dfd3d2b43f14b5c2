package claim

import (
	"context"
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
