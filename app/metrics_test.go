package app

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestMetricsAndHealth runs the pipeline with its HTTP listener and checks
// that /metrics carries every series operators are promised, with values
// that match the work done.
func TestMetricsAndHealth(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), nil)
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	base := startPipelineHTTP(t, ctx, cfg)
	res, err := generator.Generate(ctx, cfg, generator.Options{Orders: 60, Seed: 9, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	orders := waitAllFinal(t, cfg, res.FirstID, res.LastID, 60, time.Minute)

	for path, want := range map[string]int{"healthz": 200, "readyz": 200} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET /%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	value := func(series string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no series %s in /metrics", series)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	routed, rejected := 0, 0
	for _, o := range orders {
		for _, l := range o.Progress {
			switch l.Status {
			case "routed", "delivered":
				routed++
			case "rejected":
				rejected++
			}
		}
	}
	if got := value(`orderflow_lines_total{handler="route",status="routed"}`); int(got) != routed {
		t.Errorf("routed lines metric %v, statuses say %d", got, routed)
	}
	if rejected > 0 {
		if got := value(`orderflow_rejected_lines_total{handler="validate"}`); int(got) != rejected {
			t.Errorf("rejected lines metric %v, statuses say %d", got, rejected)
		}
	}
	if value(`orderflow_mongodb_commands_total{command="insert"}`) == 0 || value(`orderflow_status_write_batch_records_count`) == 0 {
		t.Error("no status writes counted")
	}
	for _, series := range []string{
		"orderflow_router_handler_execution_time_seconds_count",
		"orderflow_router_subscriber_messages_received_total",
		"orderflow_consumer_lag{",
		"orderflow_status_write_seconds_bucket",
		"orderflow_partner_deliveries_total{",
		"orderflow_line_latency_seconds_bucket",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series)).MatchString(text) {
			t.Errorf("no %s in /metrics", series)
		}
	}
}
