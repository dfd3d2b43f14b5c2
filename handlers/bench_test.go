package handlers

import (
	"context"
	"testing"
)

func BenchmarkValidate(b *testing.B) {
	p, l := Validate(meta), line(0, 1000)
	b.ReportAllocs()
	for b.Loop() {
		p(context.Background(), l)
	}
}

func BenchmarkEnrich(b *testing.B) {
	p, l := Enrich(meta), line(0, 1000)
	b.ReportAllocs()
	for b.Loop() {
		p(context.Background(), l)
	}
}

func BenchmarkRoute(b *testing.B) {
	p, l := Route(meta), line(1, 1000, 1003, 1004, 1000)
	b.ReportAllocs()
	for b.Loop() {
		p(context.Background(), l)
	}
}
