package order

import (
	"encoding/json"
	"testing"
)

// The decoder and encoder run once per message at every stage.

func BenchmarkDecodeLine(b *testing.B) {
	data := Encode(sampleLine())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeLine(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeLineEncodingJSON is the reference the strict decoder is
// measured against.
func BenchmarkDecodeLineEncodingJSON(b *testing.B) {
	data := Encode(sampleLine())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var l Line
		if err := json.Unmarshal(data, &l); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	l := sampleLine()
	l.FromLocationName, l.ToLocationName = "Morris Park Bake Shop", "Riviera Caterer"
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = AppendLine(buf[:0], l)
	}
}

func BenchmarkEncodeEncodingJSON(b *testing.B) {
	l := sampleLine()
	l.FromLocationName, l.ToLocationName = "Morris Park Bake Shop", "Riviera Caterer"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(l); err != nil {
			b.Fatal(err)
		}
	}
}
