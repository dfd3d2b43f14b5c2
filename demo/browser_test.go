package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/status"
)

// chromium finds Debian's chromium, or skips the test where it is missing
// (CI sets ORDERFLOW_REQUIRE_BROWSER and installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("ORDERFLOW_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium: install Debian's chromium package (scripts/test.sh does)")
	}
	t.Skip("no chromium on this machine")
	return ""
}

// render loads url in headless chromium, lets its script run, and returns
// the resulting DOM.
func render(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(t.TempDir(), "profile"), "--virtual-time-budget=8000", "--dump-dom", url).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

func textOf(t *testing.T, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element %q on the page", id)
	}
	return m[1]
}

func number(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// TestDashboardInBrowser runs the demo and loads its dashboard in a real
// headless browser, then checks the page shows what the API says.
func TestDashboardInBrowser(t *testing.T) {
	browser := chromium(t)
	brokers, _ := testenv.Brokers(t)
	data, err := os.ReadFile("../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(data, "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers, cfg.MongoDB.URI = brokers, testenv.MongoURI(t)
	cfg.MongoDB.Database = "orderflow_" + testenv.Unique()
	cfg.HTTP.Listen = "127.0.0.1:0"
	for i := range cfg.Delivery.Partners {
		cfg.Delivery.Partners[i].Sink.Path = filepath.Join(t.TempDir(), cfg.Delivery.Partners[i].Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Orders: 120, Out: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Final: func(u string) { urls <- u }})
	}()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("demo ended: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("demo did not finish its orders")
	}

	var sum status.Summary
	testenv.GetJSON(t, base+"summary", &sum)
	var page struct {
		Orders []*status.Order `json:"orders"`
	}
	testenv.GetJSON(t, base+"orders?limit=1", &page)
	order := page.Orders[0]

	// The server samples its counters every two seconds; wait for a few
	// samples so that the page has a chart to draw.
	var stats struct {
		History []json.RawMessage `json:"history"`
	}
	for deadline := time.Now().Add(20 * time.Second); len(stats.History) < 3 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		testenv.GetJSON(t, base+"stats", &stats)
	}

	dom := render(t, browser, fmt.Sprintf("%s#order=%d", base, order.ID))
	// The throughput chart is drawn from the server's history at once.
	if m := regexp.MustCompile(`<canvas id="chart"[^>]*data-points="(\d+)"`).FindStringSubmatch(dom); m == nil || number(t, m[1]) < 2 {
		t.Errorf("chart drawn with %v points, from %d samples", m, len(stats.History))
	}
	if rate := textOf(t, dom, "stage-routed-rate"); !regexp.MustCompile(`^[\d,.]+ lines/s here$`).MatchString(rate) {
		t.Errorf("routed rate shows %q", rate)
	}
	for _, st := range status.Stages {
		if got := number(t, textOf(t, dom, "stage-"+string(st)+"-count")); got != sum.LinesByStage[st] {
			t.Errorf("page shows %d lines %s, the API %d", got, st, sum.LinesByStage[st])
		}
	}
	checks := map[string]int{
		"orders-total":    sum.Orders,
		"orders-final":    sum.Orders - sum.NotFinal,
		"rejected-orders": sum.ByStatus[status.Rejected],
		"rejected-lines":  sum.LinesRejected,
		"poisoned-lines":  sum.LinesFailed,
		"failed-orders":   sum.ByStatus[status.Failed],
	}
	for id, want := range checks {
		if got := number(t, textOf(t, dom, id)); got != want {
			t.Errorf("page shows %s %d, the API %d", id, got, want)
		}
	}
	if sum.Orders != 120 || sum.ByStatus[status.Rejected] == 0 {
		t.Errorf("summary %+v", sum)
	}
	// The order lookup box shows the order the API returns.
	if id, st := textOf(t, dom, "lookup-order"), textOf(t, dom, "lookup-status"); id != strconv.FormatInt(order.ID, 10) || st != string(order.Status) {
		t.Errorf("lookup shows order %s %s, the API %d %s", id, st, order.ID, order.Status)
	}
	if got := textOf(t, dom, "ready"); got != "ready" {
		t.Errorf("readiness shows %q", got)
	}
	// The metadata panel shows what the router's snapshot holds.
	ds, err := metastore.SampleDataset()
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := fmt.Sprintf("%d fraud IPs, %d locations, %d products", len(ds.FraudIPs), len(ds.Locations), len(ds.Products))
	if got := textOf(t, dom, "metadata-entries"); got != wantMeta {
		t.Errorf("metadata panel shows %q, want %q", got, wantMeta)
	}
	if got := textOf(t, dom, "metadata-loaded"); !strings.HasPrefix(got, "(read ") {
		t.Errorf("metadata panel shows read time %q", got)
	}
	dom = render(t, browser, base+"#order=nonsense")
	if msg := textOf(t, dom, "lookup-error"); !strings.Contains(msg, "not a positive integer") {
		t.Errorf("bad order id shows %q", msg)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v", err)
	}
}
