package bench

import (
	"context"
	"testing"
	"time"
)

// TestRouterOnly checks that the in-memory three-hop run delivers every
// line and stops cleanly.
func TestRouterOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lps, err := routerOnly(ctx, 5000, 4)
	if err != nil {
		t.Fatal(err)
	}
	if lps <= 0 {
		t.Fatalf("%v lines/s", lps)
	}
}

// BenchmarkRouterOnly measures the Watermill Router's own cost per line
// over three hops, with no broker: see routerOnly.
func BenchmarkRouterOnly(b *testing.B) {
	lps, err := routerOnly(context.Background(), max(b.N, 1), 8)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(lps, "lines/s")
}
