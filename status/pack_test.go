package status

import (
	"reflect"
	"testing"
	"time"
)

func TestPackRoundTrip(t *testing.T) {
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	d := &batchDoc{Written: base, Recs: []recDoc{
		{OrderID: 42, Line: 1, Lines: 3, Time: base.Add(-1500 * time.Microsecond), Partition: 7, Offset: 123456789},
		{OrderID: 7, Line: -1, Lines: 0, Time: base.Add(time.Hour), Partition: 0, Offset: 0, Reason: "malformed JSON at byte 3", Partner: "acme", Detail: "out/7.json"},
		{OrderID: 42, Line: 0, Lines: 3, Time: base, Partition: 1, Offset: 5},
	}}
	want := append([]recDoc(nil), d.Recs...)
	d.pack()
	if d.OMin != 7 || d.OMax != 42 || !reflect.DeepEqual(d.Orders, []int64{7, 42}) || d.Count != 3 {
		t.Fatalf("bounds %d..%d orders %v count %d", d.OMin, d.OMax, d.Orders, d.Count)
	}
	d.Recs = nil
	if err := d.unpack(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Recs, want) {
		t.Fatalf("got %+v\nwant %+v", d.Recs, want)
	}
	d.Packed = d.Packed[:len(d.Packed)-3]
	if err := d.unpack(); err == nil {
		t.Fatal("truncated records decoded without error")
	}
	d.Packed = []byte{99}
	if err := d.unpack(); err == nil {
		t.Fatal("unknown format decoded without error")
	}
}
