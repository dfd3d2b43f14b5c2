package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
)

// TestBenchSmall runs the whole benchmark at a tiny size, with the real
// binary as router and relay, and checks that every figure was measured.
// It measures nothing worth reading; `orderflow bench` does.
func TestBenchSmall(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "orderflow")
	build := exec.Command("go", "build", "-o", exe, "github.com/orderflow/orderflow")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(data, "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, Options{Lines: 3000, SmallLines: 1000, HalfRateLines: 600, BaselineLines: 60, BaselineTime: 30 * time.Second,
		OtherGuaranteeLines: 1500, NoClaimsLines: 1500, ReadOrders: 5000, Partitions: 4, Config: cfg, Exe: exe, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	p := res.Pipeline
	switch {
	case res.CeilingLPS <= 0 || res.RouterOnlyLPS <= 0 || p.LinesPerSecond <= 0 || res.BaselineLPS <= 0:
		t.Fatalf("throughputs %v %v %v %v", res.CeilingLPS, res.RouterOnlyLPS, p.LinesPerSecond, res.BaselineLPS)
	case p.Lines < 2000 || p.NotFinal != 0:
		t.Fatalf("pipeline run: %+v", p)
	case p.DeliveredLines < p.Lines/10:
		t.Fatalf("the delivery stage delivered %d of %d lines", p.DeliveredLines, p.Lines)
	case p.CommandsPerLine <= 0 || p.CommandsPerLine > 1:
		t.Fatalf("commands per line %v", p.CommandsPerLine)
	case p.RouterPeakMB <= 0 || p.RouterCPUPer1000 <= 0 || p.P99ms < p.P50ms:
		t.Fatalf("router figures %+v", p)
	case res.HalfRate == nil || res.HalfRate.RateLimit <= 0 || res.Small == nil || res.LargeOverSmall <= 0:
		t.Fatalf("half-rate %+v small %+v", res.HalfRate, res.Small)
	case len(res.Reads) != 2 || res.Reads[1].Orders != 5000 || res.Reads[0].OrderP50ms <= 0 || res.Reads[1].SummaryMs <= 0 || res.Reads[1].StuckMs <= 0:
		t.Fatalf("status reads %+v", res.Reads)
	case res.OtherGuarantee == nil || res.OtherGuaranteeName != config.ExactlyOnce || res.OtherGuarantee.NotFinal != 0 || res.ExactlyOnceOverAtLeastOnce <= 0:
		t.Fatalf("exactly-once run %+v, ratio %v", res.OtherGuarantee, res.ExactlyOnceOverAtLeastOnce)
	case res.NoClaims == nil || res.NoClaims.NotFinal != 0 || res.ClaimsRatio <= 0:
		t.Fatalf("run without line claims %+v, ratio %v", res.NoClaims, res.ClaimsRatio)
	case res.BaselineCommandsLine < 3:
		t.Fatalf("the baseline sent %v commands a line: it is not making one query per message", res.BaselineCommandsLine)
	}
	var table bytes.Buffer
	res.Print(&table)
	for _, row := range []string{"pipeline / ceiling", "Router alone / ceiling", "pipeline / plain baseline", "MongoDB commands per line", "router peak memory", "exactly_once / at_least_once throughput", "one order's status, p50 / max, at 5,000 orders"} {
		if !strings.Contains(table.String(), row) {
			t.Fatalf("table has no %q:\n%s", row, table.String())
		}
	}
	if err := res.WriteJSON(filepath.Join(t.TempDir(), "bench.json")); err != nil {
		t.Fatal(err)
	}
}
