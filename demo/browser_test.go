package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/httpapi"
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

	// The aggregations write their rollups about once a second, after the
	// lines: render once two reads of them a second and a half apart agree,
	// and again should they have moved during the render.
	var (
		aggs map[string]aggregate.View
		dom  string
	)
	for attempt := 1; ; attempt++ {
		aggs = stableAggregates(t, base)
		dom = render(t, browser, fmt.Sprintf("%s#order=%d", base, order.ID))
		if reflect.DeepEqual(readAggregates(t, base), aggs) {
			break
		}
		if attempt == 3 {
			t.Fatal("the aggregations changed during each of 3 renders")
		}
	}
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
	checkAggregatePanels(t, dom, base, aggs, sum)
	dom = render(t, browser, base+"#order=nonsense")
	if msg := textOf(t, dom, "lookup-error"); !strings.Contains(msg, "not a positive integer") {
		t.Errorf("bad order id shows %q", msg)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v", err)
	}
}

// readAggregates reads /aggregates as the page does, by name.
func readAggregates(t *testing.T, base string) map[string]aggregate.View {
	t.Helper()
	var list struct {
		Aggregates []aggregate.View `json:"aggregates"`
	}
	testenv.GetJSON(t, base+"aggregates?top=10", &list)
	out := map[string]aggregate.View{}
	for _, v := range list.Aggregates {
		out[v.Name] = v
	}
	return out
}

// stableAggregates returns the aggregations once two reads 1.5s apart agree.
func stableAggregates(t *testing.T, base string) map[string]aggregate.View {
	t.Helper()
	prev := readAggregates(t, base)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(1500 * time.Millisecond)
		next := readAggregates(t, base)
		if reflect.DeepEqual(next, prev) {
			return next
		}
		prev = next
	}
	t.Fatalf("the aggregations still change after 30s: %+v", prev)
	return nil
}

// money formats an amount as the page does (en-US, two decimals).
func money(f float64) string {
	s := strconv.FormatFloat(math.Abs(f), 'f', 2, 64)
	whole, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	if f < 0 && s != "0.00" {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + frac
}

// checkAggregatePanels checks that the aggregation panels show what the
// API said (aggs, read just before and after the render), and that the
// API's numbers agree with each other and with the order statuses.
func checkAggregatePanels(t *testing.T, dom, base string, aggs map[string]aggregate.View, sum status.Summary) {
	t.Helper()
	price, places := aggs["order_price"], aggs["location_product_count"]
	if price.Name == "" || places.Name == "" {
		t.Fatalf("aggregations %v: want order_price and location_product_count", aggs)
	}

	// Orders and average order value.
	if got := number(t, textOf(t, dom, "agg-orders")); int64(got) != price.Groups {
		t.Errorf("page shows %d orders priced, the API %d", got, price.Groups)
	}
	if got, want := textOf(t, dom, "agg-revenue-total"), money(price.Totals["total_amount"]); got != want {
		t.Errorf("page shows revenue %q, the API %v (%q)", got, price.Totals["total_amount"], want)
	}
	if got, want := textOf(t, dom, "agg-average"), money(price.PerGroup["total_amount"]); got != want {
		t.Errorf("page shows average order %q, the API %v (%q)", got, price.PerGroup["total_amount"], want)
	}
	if got := number(t, textOf(t, dom, "agg-lines")); float64(got) != price.Totals["lines"] {
		t.Errorf("page shows %d lines priced, the API %v", got, price.Totals["lines"])
	}
	// Every enriched line is counted once, and every order that was not
	// rejected has a result (no line of the demo fails before delivery).
	if price.Totals["lines"] != float64(sum.LinesByStage[status.Enriched]) {
		t.Errorf("order_price counted %v lines, %d were enriched", price.Totals["lines"], sum.LinesByStage[status.Enriched])
	}
	if want := int64(sum.Orders - sum.ByStatus[status.Rejected]); price.Groups != want {
		t.Errorf("order_price has %d orders, %d were not rejected", price.Groups, want)
	}
	if price.Totals["total_amount"] <= 0 || price.PerGroup["total_amount"] <= 0 {
		t.Errorf("order_price totals %v, per order %v", price.Totals, price.PerGroup)
	}

	// Revenue per minute: a bar a minute, the newest minute's amount, and
	// minutes that add up to the totals (the demo lasts less than an hour).
	if m := regexp.MustCompile(`<canvas id="agg-revenue-chart"[^>]*data-bars="(\d+)"`).FindStringSubmatch(dom); m == nil || number(t, m[1]) != min(60, len(price.Minutes)) {
		t.Errorf("revenue chart drawn with %v bars, the API has %d minutes", m, len(price.Minutes))
	}
	if len(price.Minutes) == 0 {
		t.Fatal("order_price has no minutes")
	}
	last := price.Minutes[len(price.Minutes)-1]
	if got, want := textOf(t, dom, "agg-revenue-last-amount"), money(last.Totals["total_amount"]); got != want {
		t.Errorf("page shows %q in the newest minute, the API %v (%q)", got, last.Totals["total_amount"], want)
	}
	if got := number(t, textOf(t, dom, "agg-revenue-last-orders")); int64(got) != last.Groups {
		t.Errorf("page shows %d orders in the newest minute, the API %d", got, last.Groups)
	}
	var minuteSum float64
	var minuteGroups int64
	for _, m := range price.Minutes {
		minuteSum += m.Totals["total_amount"]
		minuteGroups += m.Groups
	}
	if math.Abs(minuteSum-price.Totals["total_amount"]) > 0.005 || minuteGroups != price.Groups {
		t.Errorf("order_price minutes add up to %.2f in %d orders, its totals %.2f in %d", minuteSum, minuteGroups, price.Totals["total_amount"], price.Groups)
	}

	// Top destinations: one row each, largest first, the first the API's.
	rows := regexp.MustCompile(`<tr id="agg-top-\d+"`).FindAllString(dom, -1)
	if len(rows) != len(places.Top) || len(rows) == 0 || len(rows) > 10 {
		t.Fatalf("page shows %d top destinations, the API %d", len(rows), len(places.Top))
	}
	name, id, count := textOf(t, dom, "agg-top-0-name"), textOf(t, dom, "agg-top-0-id"), number(t, textOf(t, dom, "agg-top-0-count"))
	first := places.Top[0]
	if name != fmt.Sprint(first["to_location_name"]) || id != fmt.Sprint(first["to_location"]) || float64(count) != first["total_product"] {
		t.Errorf("page shows top destination %s (location %s): %d, the API %v", name, id, count, first)
	}
	for i := 1; i < len(rows); i++ {
		if c := number(t, textOf(t, dom, fmt.Sprintf("agg-top-%d-count", i))); c > count {
			t.Errorf("top destination %d has %d products, more than the one before (%d)", i, c, count)
		} else {
			count = c
		}
	}
	// The destinations' results add up to the rollups' total.
	var all aggregate.View
	testenv.GetJSON(t, base+"aggregates/location_product_count?top=200", &all)
	var products float64
	for _, d := range all.Top {
		n, _ := d["total_product"].(float64)
		products += n
	}
	if products != places.Totals["total_product"] || int64(len(all.Top)) != places.Groups {
		t.Errorf("%d destinations with %v products, the rollups %d with %v", len(all.Top), products, places.Groups, places.Totals["total_product"])
	}
}

type noOrders struct{}

func (noOrders) Orders(context.Context, ...int64) ([]*status.Order, error) { return nil, nil }
func (noOrders) All(context.Context) ([]*status.Order, error)              { return nil, nil }

// stubAggregates has both aggregations, with nothing counted yet; or,
// with err set, fails every read.
type stubAggregates struct{ err error }

func (stubAggregates) Names() []string { return []string{"order_price", "location_product_count"} }

func (s stubAggregates) View(_ context.Context, name string, _ int) (aggregate.View, error) {
	return aggregate.View{Name: name, Totals: map[string]float64{}, PerGroup: map[string]float64{}}, s.err
}

func (s stubAggregates) Group(context.Context, string, string) (map[string]any, error) {
	return nil, s.err
}

// TestDashboardAggregationsAbsent renders the dashboard of a server
// without aggregations, with aggregations that counted nothing yet, and
// with aggregations that cannot be read: the panels say so.
func TestDashboardAggregationsAbsent(t *testing.T) {
	browser := chromium(t)
	for _, c := range []struct {
		name string
		src  httpapi.AggregateSource
		want map[string]string
	}{
		{"none", nil, map[string]string{
			"agg-revenue-note": "no aggregations", "agg-orders-note": "no aggregations", "agg-top-note": "no aggregations",
			"agg-orders": "–", "agg-revenue-total": "–", "agg-average": "–", "agg-revenue-last-amount": "–",
		}},
		{"empty", stubAggregates{}, map[string]string{
			"agg-revenue-note": "no lines counted yet", "agg-orders-note": "", "agg-top-note": "no destinations counted yet",
			"agg-orders": "0", "agg-revenue-total": "0.00", "agg-average": "–", "agg-lines": "0", "agg-revenue-last-amount": "–",
		}},
		{"broken", stubAggregates{err: errors.New("mongodb: down")}, map[string]string{
			"agg-revenue-note": "aggregations not read: read aggregation order_price: mongodb: down",
			"agg-top-note":     "aggregations not read: read aggregation order_price: mongodb: down",
			"agg-orders":       "–",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := httpapi.Start(httpapi.Config{Listen: "127.0.0.1:0", Orders: noOrders{}, Aggregates: c.src})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			dom := render(t, browser, s.URL())
			for id, want := range c.want {
				if got := textOf(t, dom, id); got != want {
					t.Errorf("%s shows %q, want %q", id, got, want)
				}
			}
			if strings.Contains(dom, `<tr id="agg-top-0"`) {
				t.Error("top destinations listed")
			}
		})
	}
}
