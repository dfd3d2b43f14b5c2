package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/status"
)

type memOrders struct {
	orders []*status.Order
	scans  int
}

func (m *memOrders) Orders(_ context.Context, ids ...int64) ([]*status.Order, error) {
	var out []*status.Order
	for _, o := range m.orders {
		for _, id := range ids {
			if o.ID == id {
				out = append(out, o)
			}
		}
	}
	return out, nil
}

func (m *memOrders) All(context.Context) ([]*status.Order, error) {
	m.scans++
	return m.orders, nil
}

func start(t *testing.T, src OrderSource, ready func(context.Context) error) string {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Orders: src, Ready: ready, StuckAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("listening on %s", s.Addr())
	}
	return s.URL()
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

func TestOrderAPI(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	src := &memOrders{orders: []*status.Order{
		{ID: 1, Status: status.Routed, Final: true, Lines: 1, FirstSeen: old, Progress: []status.LineState{{Line: 0, Status: status.Routed}}},
		{ID: 2, Status: status.Enriched, Lines: 2, FirstSeen: old},
		{ID: 3, Status: status.Rejected, Final: true, Lines: 1, FirstSeen: old},
		{ID: 4, Status: status.Validated, Lines: 1, FirstSeen: time.Now()},
	}}
	base := start(t, src, nil)

	var o status.Order
	if code := get(t, base+"orders/1", &o); code != 200 || o.ID != 1 || o.Status != status.Routed {
		t.Fatalf("GET /orders/1: %d %+v", code, o)
	}
	var e map[string]string
	for url, want := range map[string]int{
		"orders/abc": 400, "orders/-4": 400, "orders/99": 404,
		"orders?status=nonsense": 400, "orders?limit=0": 400, "orders?limit=x": 400,
		"stuck?older_than=soon": 400, "stuck?limit=5000": 400,
	} {
		if code := get(t, base+url, &e); code != want || e["error"] == "" {
			t.Errorf("GET /%s: %d %v, want %d with an error", url, code, e, want)
		}
	}

	var page orderPage
	get(t, base+"orders?limit=2", &page)
	if len(page.Orders) != 2 || page.Orders[0].ID != 4 || page.Next != 3 || page.Total != 4 {
		t.Fatalf("first page %+v", page)
	}
	page = orderPage{}
	get(t, base+"orders?limit=2&before=3", &page)
	if len(page.Orders) != 2 || page.Orders[0].ID != 2 || page.Next != 0 {
		t.Fatalf("second page %+v", page)
	}
	page = orderPage{}
	get(t, base+"orders?status=rejected", &page)
	if len(page.Orders) != 1 || page.Orders[0].ID != 3 {
		t.Fatalf("rejected %+v", page)
	}

	var sum status.Summary
	get(t, base+"summary", &sum)
	if sum.Orders != 4 || sum.ByStatus[status.Rejected] != 1 || sum.NotFinal != 2 {
		t.Fatalf("summary %+v", sum)
	}
	var stuck struct {
		orderPage
		OlderThan string `json:"older_than"`
	}
	get(t, base+"stuck", &stuck)
	if len(stuck.Orders) != 1 || stuck.Orders[0].ID != 2 || stuck.OlderThan != "1m0s" {
		t.Fatalf("stuck %+v", stuck)
	}
	get(t, base+"stuck?older_than=0s", &stuck)
	if len(stuck.Orders) != 2 {
		t.Fatalf("stuck now %+v", stuck)
	}
	// The lists share one cached scan.
	if src.scans != 1 {
		t.Fatalf("%d scans for the lists", src.scans)
	}
}

func TestHealthAndDashboard(t *testing.T) {
	notReady := errors.New("mongodb: down")
	ready := func(context.Context) error { return notReady }
	base := start(t, &memOrders{}, ready)
	if code := get(t, base+"healthz", nil); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	var r map[string]string
	if code := get(t, base+"readyz", &r); code != 503 || r["error"] != "mongodb: down" {
		t.Fatalf("readyz %d %v", code, r)
	}
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.Contains(page, `id="pipeline"`) || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("dashboard %d %q", resp.StatusCode, page[:min(200, len(page))])
	}
	// Self-contained: nothing is loaded from elsewhere.
	for _, ref := range []string{"http://", "https://", "<script src", "<link"} {
		if strings.Contains(page, ref) {
			t.Fatalf("dashboard refers to an outside resource: %s", ref)
		}
	}
	if code := get(t, base+"nope", nil); code != 404 {
		t.Fatalf("unknown path %d", code)
	}
}

// TestStatsHistory checks that /stats carries the sampled history, and that
// the history keeps only the chart's window.
func TestStatsHistory(t *testing.T) {
	reg := prometheus.NewRegistry()
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderflow_lines_total"}, []string{"handler", "status"})
	reg.MustRegister(lines)
	lines.WithLabelValues("route", "routed").Add(7)
	lines.WithLabelValues("validate", "routed").Add(3) // summed over handlers
	s, err := Start(Config{Listen: "127.0.0.1:0", Orders: &memOrders{}, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var st stats
	deadline := time.Now().Add(10 * time.Second)
	for len(st.History) == 0 && time.Now().Before(deadline) {
		get(t, s.URL()+"stats", &st)
		time.Sleep(20 * time.Millisecond)
	}
	if len(st.History) == 0 || st.History[0].Lines["routed"] != 10 {
		t.Fatalf("history %+v", st.History)
	}

	var h history
	for i := range 1000 {
		h.add(stats{At: time.Unix(int64(i), 0)})
	}
	got := h.list()
	if want := int(sampleWindow/sampleEvery) + 1; len(got) != want || !got[len(got)-1].At.Equal(time.Unix(999, 0)) {
		t.Fatalf("kept %d samples ending %v, want the newest %d", len(got), got[len(got)-1].At, want)
	}
}
