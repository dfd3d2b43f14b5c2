package app

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/order"
)

// TestConfigCheckRefusesGraphsThatCannotWork edits the shipped configuration
// into each graph that cannot work and checks that config.Load (what `config check`
// and `run` both call) refuses it, naming the handler and key.
func TestConfigCheckRefusesGraphsThatCannotWork(t *testing.T) {
	base := testenv.Shipped(t)
	edit := func(text string, pairs ...string) string {
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(text, pairs[i]) {
				t.Fatalf("shipped config has no %q", pairs[i])
			}
			text = strings.Replace(text, pairs[i], pairs[i+1], 1)
		}
		return text
	}
	disable := func(name string) (string, string) {
		return "  - name: " + name + "\n", "  - name: " + name + "\n    enabled: false\n"
	}
	dv, dvOff := disable("validate")
	de, deOff := disable("enrich")
	dr, drOff := disable("route")
	dd, ddOff := disable("deliver")
	dp, dpOff := disable("order_price")
	dl, dlOff := disable("location_product_count")
	cases := []struct{ name, text, want string }{
		{"every handler disabled", edit(base, dv, dvOff, de, deOff, dr, drOff, dd, ddOff, dp, dpOff, dl, dlOff),
			"handlers: every handler is disabled"},
		{"publishes to its own input", edit(base, "publish: valid_orders", "publish: raw_order"),
			`handlers[0].publish: handler "validate" publishes to its own input raw_order`},
		{"a cycle A to B to A", edit(base, "publish: enriched_order_details", "publish: raw_order"),
			"form a cycle (validate → enrich → validate)"},
		{"a handler publishing back to raw_order", edit(base, "internal: internal_routed_order", "internal: raw_order"),
			"form a cycle (validate → enrich → route → validate)"},
		{"an input nothing publishes to", edit(base, de, deOff),
			`handlers[2].subscribe: handler "route" consumes enriched_order_details, which no enabled handler`},
		{"routes on a processor with one output", edit(base, "    publish: valid_orders\n", "    publish: valid_orders\n    routes:\n      internal: valid_orders\n"),
			"handlers[0].routes: processor validate has one output: give it publish, not routes"},
		{"routes instead of publish on validate", edit(base, "    publish: valid_orders\n", "    routes:\n      internal: valid_orders\n"),
			"handlers[0].routes: processor validate has one output"},
		{"a handler reading the poison queue", edit(base, "subscribe: external_routed_order", "subscribe: poison_queue"),
			`handler "deliver" consumes the poison queue poison_queue`},
		{"a handler writing the poison queue", edit(base, "publish: enriched_order_details", "publish: poison_queue"),
			`handler "enrich" publishes to the poison queue poison_queue`},
		{"a stack without poison_queue", edit(base, "  - poison_queue:\n      topic: poison_queue\n      permanent: [invalid_input, unknown_reference, no_partner, partner_rejected, conflict, late]\n      after_retries: true\n  - retry:", "  - retry:"),
			`middleware: handler "validate": its middleware has no poison_queue`},
		{"after_retries: false", edit(base, "      after_retries: true\n  - retry:", "      after_retries: false\n  - retry:"),
			`handler "validate": its poison_queue has after_retries: false`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load([]byte(tc.text), "orderflow.yaml", nil)
			var ce *config.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a config.ConfigError saying %q", err, tc.want)
			}
		})
	}
	// What is declared on purpose passes.
	allowed := edit(base, "  - name: validate\n", "  - name: validate\n    redeliver_forever: true\n",
		"  - name: enrich\n", "  - name: enrich\n    redeliver_forever: true\n",
		"  - name: route\n", "  - name: route\n    redeliver_forever: true\n",
		"  - name: order_price\n", "  - name: order_price\n    redeliver_forever: true\n",
		"  - name: location_product_count\n", "  - name: location_product_count\n    redeliver_forever: true\n",
		"      after_retries: true\n  - retry:", "      after_retries: false\n  - retry:")
	if _, err := config.Load([]byte(allowed), "orderflow.yaml", nil); err != nil {
		t.Fatalf("a declared redeliver_forever stack refused: %v", err)
	}
	external := edit(base, de, deOff, "  enriched_order_details: {partitions: 8}", "  enriched_order_details: {partitions: 8, external: true}")
	if _, err := config.Load([]byte(external), "orderflow.yaml", nil); err != nil {
		t.Fatalf("a topic declared external refused: %v", err)
	}
}

func TestRunOnlyAgreesWithCheck(t *testing.T) {
	off := strings.Replace(testenv.Shipped(t), "  - name: deliver\n", "  - name: deliver\n    enabled: false\n", 1)
	cfg, err := config.Load([]byte(off), "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for only, want := range map[string]string{
		"enrichh": `--only: no handler named "enrichh"`,
		"deliver": `--only: handler "deliver" is disabled`,
	} {
		err := cfg.CheckOnly([]string{only})
		var ce *config.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("--only %s: %v, want %q", only, err, want)
		}
	}
	if err := cfg.CheckOnly([]string{"validate", "enrich"}); err != nil {
		t.Errorf("--only validate,enrich: %v", err)
	}
}

func TestUnknownEnvironmentVariableIsRefused(t *testing.T) {
	environ := []string{"ORDERFLOW_MIDDLEWARE_RETRY_MAX_RETIRES=5", "ORDERFLOW_KAFKA_BROKERS=x:9092", "ORDERFLOW_TEST_MONGODB_URI=mongodb://t", "PATH=/bin"}
	env := func(name string) (string, bool) {
		for _, kv := range environ {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckEnviron(environ)
	want := "environment ORDERFLOW_MIDDLEWARE_RETRY_MAX_RETIRES: no setting has this variable; did you mean ORDERFLOW_MIDDLEWARE_RETRY_MAX_RETRIES?"
	var ce *config.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want only %q", err, want)
	}
	// The per-handler forms come from the same schema, and are listed.
	names := cfg.EnvNames()
	for _, n := range []string{"ORDERFLOW_HANDLERS_DELIVER_MIDDLEWARE_POISON_QUEUE_TOPIC", "ORDERFLOW_HANDLERS_ENRICH_ENABLED",
		"ORDERFLOW_METADATA_UNKNOWN_REFERENCE_GRACE", "ORDERFLOW_TOPICS_RAW_ORDER_PARTITIONS"} {
		if !slices.Contains(names, n) {
			t.Errorf("config env lacks %s", n)
		}
	}
}

// TestRedeliverForeverIsNeverSilent runs a handler declared to redeliver
// without end (no poison queue) on a line that always fails: it is listed by
// /stuck with its reason, counted, and /readyz turns degraded.
func TestRedeliverForeverIsNeverSilent(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) {
		c.Metadata.UnknownReferenceGrace = config.D(0)
		c.Router.HeldReportAfter = 3
		c.Router.HeldDegradedAfter = config.D(time.Second)
		c.Handlers[1].RedeliverForever = true
		c.Handlers[1].Middleware = []config.Middleware{{Kind: config.MWCorrelationID}, {Kind: config.MWRecoverer}}
	})
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	base := startPipelineHTTP(t, ctx, cfg)
	o := makeOrder(950001, 1000)
	o.Products[0].FromLocation = 99999 // unknown: enrich fails it every time
	publishTestOrders(t, cfg, []order.Order{o}, 0)
	deadline := time.Now().Add(time.Minute)
	for {
		var stuck struct {
			Held []struct {
				Handler  string `json:"handler"`
				OrderID  string `json:"order_id"`
				Attempts int    `json:"attempts"`
				Reason   string `json:"reason"`
			} `json:"held_lines"`
		}
		testenv.GetJSON(t, base+"stuck", &stuck)
		code, reason := readyz(t, base)
		if len(stuck.Held) == 1 && code == http.StatusServiceUnavailable {
			h := stuck.Held[0]
			if h.Handler != "enrich" || h.OrderID != "950001" || h.Attempts < 3 || !strings.Contains(h.Reason, "unknown from_location 99999") {
				t.Fatalf("held line %+v", h)
			}
			if !strings.Contains(reason, "degraded") || !strings.Contains(reason, "unknown from_location 99999") {
				t.Fatalf("/readyz says %q", reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: held %+v, /readyz %d %q", stuck.Held, code, reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `orderflow_held_lines_total{handler="enrich"} 1`) {
		t.Fatal("the held line is not counted in /metrics")
	}
}
