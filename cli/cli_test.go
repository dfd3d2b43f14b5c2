package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/testenv"
)

// shippedConfig is read once, before a test changes directory.
var shippedConfig, shippedErr = os.ReadFile("../orderflow.yaml")

func runLine(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if shippedErr != nil {
		t.Fatal(shippedErr)
	}
	err := Run(ctx, args, &out, &errOut, shippedConfig)
	return out.String(), errOut.String(), err
}

func TestConfigCommands(t *testing.T) {
	out, _, err := runLine(t, "config", "check", "--config", "../orderflow.yaml")
	if err != nil || !strings.Contains(out, "../orderflow.yaml: ok (6 handlers, 10 topics)") {
		t.Fatalf("check: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	data, _ := os.ReadFile("../orderflow.yaml")
	os.WriteFile(bad, bytes.Replace(data, []byte("processor: route"), []byte("processor: rout"), 1), 0o644)
	_, _, err = runLine(t, "config", "check", "--config", bad)
	if err == nil || !regexp.MustCompile(`bad.yaml:\d+: handlers\[2\]\.processor: unknown processor "rout"`).MatchString(err.Error()) {
		t.Fatalf("check of a bad file: %v", err)
	}
	t.Setenv("ORDERFLOW_KAFKA_SASL_MECHANISM", "PLAIN")
	t.Setenv("ORDERFLOW_KAFKA_SASL_USERNAME", "svc")
	t.Setenv("ORDERFLOW_KAFKA_SASL_PASSWORD", "pa55-kafka")
	t.Setenv("ORDERFLOW_MONGODB_PASSWORD", "pa55-mongo")
	out, _, err = runLine(t, "config", "print", "--config", "../orderflow.yaml", "--mongodb-uri", "mongodb://svc:pa55-uri@db:27017/")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"pa55-kafka", "pa55-mongo", "pa55-uri"} {
		if strings.Contains(out, secret) {
			t.Fatalf("config print shows a secret:\n%s", out)
		}
	}
	if !strings.Contains(out, "mechanism: PLAIN") || !strings.Contains(out, "username: svc") {
		t.Fatalf("config print:\n%s", out)
	}
}

func TestMetadataLoadCommand(t *testing.T) {
	uri := testenv.MongoURI(t)
	t.Setenv("ORDERFLOW_MONGODB_DATABASE", "cli_"+testenv.Unique())
	dir := t.TempDir()
	good := filepath.Join(dir, "products.json")
	bad := filepath.Join(dir, "locations.json")
	os.WriteFile(good, []byte(`[{"product_id": 1, "product_name": "a", "route_id": 1, "category": "c"}]`), 0o644)
	os.WriteFile(bad, []byte("{\"location_id\": 1, \"name\": \"x\"}\n{\"location_id\": \"two\", \"name\": \"y\"}\n"), 0o644)
	_, _, err := runLine(t, "metadata", "load", "--mongodb-uri", uri, good, bad)
	if err == nil || !strings.Contains(err.Error(), "locations.json:2: location_details document: location_id must be an integer") {
		t.Fatalf("bad file: %v", err)
	}
	// Nothing was half-loaded: the good file's product is not there either.
	out, _, err := runLine(t, "metadata", "load", "--mongodb-uri", uri, good)
	if err != nil || !strings.Contains(out, "product_details       1 new") {
		t.Fatalf("after a failed load: %q %v", out, err)
	}
	out, _, err = runLine(t, "metadata", "load", "--mongodb-uri", uri)
	if err != nil || !strings.Contains(out, "fraud_ip            500 new") || !strings.Contains(out, "product_details     500 new") {
		t.Fatalf("sample: %q %v", out, err)
	}
	out, _, err = runLine(t, "metadata", "load", "--mongodb-uri", uri)
	if err != nil || strings.Contains(out, " 1 new") || !strings.Contains(out, "500 unchanged") {
		t.Fatalf("second load of the sample: %q %v", out, err)
	}
}

// TestDemoThenStatus runs the README's demo command, on embedded servers,
// then checks an order's status from the command line.
func TestDemoThenStatus(t *testing.T) {
	dir := testenv.TempDir(t)
	t.Chdir(dir)
	out, errOut, err := runLine(t, "demo", "--orders", "40", "--exit", "--data", filepath.Join(dir, "data"))
	if err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out, errOut)
	}
	demoOut := out
	// With --exit the servers are gone: the hint says how to reach the data
	// again, not the addresses that just closed.
	m := regexp.MustCompile(`orderflow embedded --data (\S+) .*\n  orderflow status --brokers 127.0.0.1:9092 --mongodb-uri mongodb://127.0.0.1:27017/ (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] != filepath.Join(dir, "data") || !strings.Contains(out, "40 orders (") || strings.Contains(out, "check an order") {
		t.Fatalf("demo output:\n%s", out)
	}
	m = []string{m[0], "", "", m[2]} // m[3]: the order id
	if !strings.Contains(out, "Kafka-protocol broker (kfake)") || !strings.Contains(out, "MongoDB-wire server (FerretDB)") {
		t.Fatalf("demo does not say what it started:\n%s", out)
	}
	// The embedded servers are gone with the demo; start the Mongo one again on
	// its data to read the statuses.
	mongo := testenv.StartMongo(t, filepath.Join(dir, "data", "mongo"))
	out, _, err = runLine(t, "status", "--mongodb-uri", mongo.URI(), m[3], "999999999")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^order_id: `+m[3]+` status is (routed|delivered|rejected)`).MatchString(out) ||
		!strings.Contains(out, "order_id: 999999999 is unknown") || !strings.Contains(out, "total:     1") {
		t.Fatalf("status:\n%s", out)
	}
	out, _, err = runLine(t, "status", "--mongodb-uri", mongo.URI())
	if err != nil || !strings.Contains(out, "total:     40") {
		t.Fatalf("status of all:\n%s %v", out, err)
	}
	out, _, err = runLine(t, "status", "--json", "--mongodb-uri", mongo.URI(), m[3])
	if err != nil || !strings.Contains(out, `"order_id": `+m[3]) || !strings.Contains(out, `"history": [`) {
		t.Fatalf("status --json:\n%s %v", out, err)
	}
	checkAggregatesCommand(t, mongo.URI(), demoOut, m[3])
}

// checkAggregatesCommand reads the demo's aggregations from the command
// line: the summary the demo printed, the JSON view, and one order.
func checkAggregatesCommand(t *testing.T, uri, demoOut, orderID string) {
	t.Helper()
	rev := regexp.MustCompile(`revenue (\d+\.\d\d) in (\d+) orders`).FindStringSubmatch(demoOut)
	if rev == nil || !strings.Contains(demoOut, "top destinations: ") {
		t.Fatalf("the demo's summary has no revenue or top destinations:\n%s", demoOut)
	}
	out, _, err := runLine(t, "aggregates", "--json", "--mongodb-uri", uri)
	if err != nil {
		t.Fatalf("aggregates --json: %v", err)
	}
	var views struct {
		Aggregates []struct {
			Name   string             `json:"name"`
			Groups int64              `json:"groups"`
			Totals map[string]float64 `json:"totals"`
			Top    []map[string]any   `json:"top"`
		} `json:"aggregates"`
	}
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views.Aggregates) != 2 {
		t.Fatalf("aggregates --json: %v\n%s", err, out)
	}
	price, places := views.Aggregates[0], views.Aggregates[1]
	if price.Name != "order_price" || fmt.Sprint(price.Groups) != rev[2] || fmt.Sprintf("%.2f", price.Totals["total_amount"]) != rev[1] {
		t.Fatalf("order_price %+v, the demo said revenue %s in %s orders", price, rev[1], rev[2])
	}
	if places.Name != "location_product_count" || len(places.Top) == 0 || places.Totals["total_product"] <= 0 {
		t.Fatalf("location_product_count %+v", places)
	}
	out, _, err = runLine(t, "aggregates", "--mongodb-uri", uri, "order_price", orderID, "999999999")
	if err != nil || !regexp.MustCompile(`order_price `+orderID+`: .*total_amount=\d`).MatchString(out) && !strings.Contains(out, "order_price "+orderID+": no result") ||
		!strings.Contains(out, "order_price 999999999: no result (yet)") {
		t.Fatalf("aggregates order_price %s:\n%s %v", orderID, out, err)
	}
	if _, _, err := runLine(t, "aggregates", "--mongodb-uri", uri, "nonesuch"); err == nil {
		t.Fatal("aggregates nonesuch: no error")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"generate"}, {"status", "abc"}, {"poison", "replay"}, {"metadata"}} {
		if _, _, err := runLine(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		} else if _, ok := err.(usageError); !ok {
			t.Errorf("%v: %v is not a usage error", args, err)
		}
	}
}

func TestTopologyCommand(t *testing.T) {
	out, _, err := runLine(t, "topology", "--config", "../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sources: raw_order", "validate (validate)\n  consumes   raw_order in group validate_group\n  publishes  valid_orders",
		"route internal -> internal_routed_order", "route external -> external_routed_order",
		"middleware correlation_id > poison_queue > retry > timeout > recoverer", "poison queue: poison_queue"} {
		if !strings.Contains(out, want) {
			t.Errorf("topology lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runLine(t, "topology", "--mermaid", "--config", "../orderflow.yaml")
	if err != nil || !strings.HasPrefix(out, "flowchart LR\n") || !strings.Contains(out, "h_2 -- internal --> t_internal_routed_order") {
		t.Fatalf("mermaid: %v\n%s", err, out)
	}
}

func TestHelpAndUnknownFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"demo", "--help"}, {"status", "-h"}, {"embedded", "--help"}} {
		out, errOut, err := runLine(t, args...)
		if err != nil || !strings.Contains(out, "Usage") || errOut != "" {
			t.Errorf("%v: err %v, stdout %q..., stderr %q", args, err, out[:min(len(out), 40)], errOut)
		}
	}
	out, errOut, err := runLine(t, "status", "--bogus")
	if _, ok := err.(usageError); !ok || out != "" || errOut != "" ||
		err.Error() != "unknown flag: --bogus (`orderflow status --help` lists its flags)" {
		t.Fatalf("unknown flag: %v, stdout %q, stderr %q", err, out, errOut)
	}
}

// TestREADMECommandLines parses every command line the README shows, in its
// code blocks and inline code, with the real command tree: each command and
// flag it uses must exist. Placeholders (N, PATH...) are filled in, and the
// usage forms with brackets or alternatives are left out.
func TestREADMECommandLines(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?m)(?:^|`)(?:\\$ )?(?:docker compose run --rm orderflow|go run \\.|orderflow) ([a-z][^`#\\n]*)")
	fill := strings.NewReplacer(" N", " 5", " R", " 5", " S", " 5", "NAME,...", "validate", "my.yaml", "../orderflow.yaml")
	seen := 0
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		line := strings.TrimSpace(m[1])
		if strings.ContainsAny(line, "[]|/") || strings.HasPrefix(line, "bench:") {
			continue // a usage form, or the bench's output
		}
		fields := strings.Fields(fill.Replace(" " + line))
		g := &globals{stdout: io.Discard, stderr: io.Discard, stopProfile: func() {}}
		root := newRoot(g)
		cmd, rest, err := root.Find(fields)
		if err != nil || cmd == root {
			t.Errorf("README: `orderflow %s`: no such command (%v)", line, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("README: `orderflow %s`: %v", line, err)
		}
		seen++
	}
	if seen < 15 {
		t.Fatalf("only %d command lines found in the README", seen)
	}
}

// TestCompletion: the shells' completion scripts are generated.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := runLine(t, "completion", shell)
		if err != nil || !strings.Contains(out, "orderflow") || len(out) < 500 {
			t.Errorf("completion %s: %v, %d bytes", shell, err, len(out))
		}
	}
}
