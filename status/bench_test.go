package status

import (
	"testing"
	"time"
)

func sampleRecords(n int) []Record {
	now := time.Now()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{OrderID: int64(1000 + i/3), Line: i % 3, Lines: 3, Status: Validated, Time: now,
			Handler: "validate", Topic: "raw_order", Partition: int32(i % 8), Offset: int64(i), Output: "valid_orders"}
	}
	return recs
}

// BenchmarkToDocs is the CPU side of one status write of 1,000 records:
// grouping and packing them.
func BenchmarkToDocs(b *testing.B) {
	recs := sampleRecords(1000)
	b.ReportAllocs()
	for b.Loop() {
		toDocs(recs, 1000, time.Now())
	}
}

// BenchmarkUnpackAndFold is the read side for 1,000 records.
func BenchmarkUnpackAndFold(b *testing.B) {
	d := toDocs(sampleRecords(1000), 1000, time.Now())[0].(*batchDoc)
	b.ReportAllocs()
	for b.Loop() {
		d.Recs = nil
		if err := d.unpack(); err != nil {
			b.Fatal(err)
		}
		folds := map[int64]*fold{}
		for i := range d.Recs {
			f := folds[d.Recs[i].OrderID]
			if f == nil {
				f = &fold{id: d.Recs[i].OrderID}
				folds[d.Recs[i].OrderID] = f
			}
			f.add(d, &d.Recs[i])
		}
	}
}
