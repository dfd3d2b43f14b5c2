package config_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	_ "github.com/orderflow/orderflow/handlers" // registers the processors
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/status"
)

func TestShippedConfigIsThePipeline(t *testing.T) {
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, sub, group, pub string
		st                    status.Status
	}{
		{"validate", "raw_order", "validate_group", "valid_orders", status.Validated},
		{"enrich", "valid_orders", "enrich_group", "enriched_order_details", status.Enriched},
		{"route", "enriched_order_details", "route_group", "", status.Routed},
		{"deliver", "external_routed_order", "deliver_group", "", status.Delivered},
		{"order_price", "enriched_order_details", "order_price_group", "order_price", ""},
		{"location_product_count", "internal_routed_order", "location_product_count_group", "location_product_count", ""},
	}
	if len(cfg.Handlers) != len(want) {
		t.Fatalf("%d handlers", len(cfg.Handlers))
	}
	for i, w := range want {
		h := cfg.Handlers[i]
		processor := w.name
		if w.st == "" {
			processor = "aggregate"
		}
		if h.Name != w.name || h.Processor != processor || h.Subscribe != w.sub || h.Group != w.group || h.Publish != w.pub || h.Status != string(w.st) || !h.IsEnabled() {
			t.Errorf("handler %d = %+v", i, h)
		}
	}
	r := cfg.Handlers[2].Routes
	if r["internal"] != "internal_routed_order" || r["external"] != "external_routed_order" {
		t.Errorf("routes %v", r)
	}
	if cfg.Kafka.InitialOffset != "oldest" || cfg.Generator.Topic != "raw_order" || cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("kafka %+v generator %+v http %+v", cfg.Kafka, cfg.Generator, cfg.HTTP)
	}
	var kinds []string
	for _, m := range cfg.Middleware {
		kinds = append(kinds, m.Kind)
	}
	if strings.Join(kinds, ",") != "correlation_id,poison_queue,retry,timeout,recoverer" {
		t.Errorf("default stack %v", kinds)
	}
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	base := testenv.Shipped(t)
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("shipped config has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	lineOfText := func(text, needle string) int {
		i := strings.Index(text, needle)
		return 1 + strings.Count(text[:i], "\n")
	}
	cases := []struct {
		name, text, needle, want string
	}{
		{"unknown processor", edit("processor: enrich", "processor: enrichh"), "processor: enrichh",
			`handlers[1].processor: unknown processor "enrichh"`},
		{"missing topic", edit("publish: valid_orders", "publish: valid_order"), "publish: valid_order\n",
			`handlers[0].publish: topic "valid_order" is not declared under topics`},
		{"bad duration", edit("commit_interval: 250ms", "commit_interval: 1 sec"), "commit_interval: 1 sec",
			`kafka.commit_interval: "1 sec" is not a duration`},
		{"same group and topic twice", edit("subscribe: valid_orders\n    group: enrich_group", "subscribe: raw_order\n    group: validate_group"), "group: validate_group\n    publish: enriched",
			`handlers[1].group: handler "validate" already consumes raw_order in group validate_group`},
		{"unknown key", edit("  max_in_flight: 1024", "  max_inflight: 1024"), "max_inflight",
			`kafka.max_inflight: unknown key "max_inflight"`},
		{"unknown middleware key", edit("max_retries: 3", "max_retry: 3"), "max_retry",
			`middleware[2].retry.max_retry: unknown key "max_retry"`},
		{"recoverer outside the poison queue", strings.Replace(edit("  - correlation_id\n  - poison_queue:", "  - correlation_id\n  - recoverer\n  - poison_queue:"),
			"      duration: 30s\n  - recoverer\n", "      duration: 30s\n", 1), "  - recoverer\n  - poison_queue",
			"recoverer must come after poison_queue"},
		{"secret in the file", edit(`    username: ""`+"\n\nmongodb", `    username: "u"`+"\n    password: hunter2\n\nmongodb"), "password: hunter2",
			"kafka.sasl.password: secrets must not be written in the file: set ORDERFLOW_KAFKA_SASL_PASSWORD"},
		{"password in the uri", edit(`uri: ""`, `uri: "mongodb://app:hunter2@db:27017"`), "uri: \"mongodb://app",
			"mongodb.uri: the URI holds a password"},
		{"aggregating a field lines do not have", edit("field: product_price, decimals: 2", "field: product_prise, decimals: 2"), "field: product_prise",
			`handlers[4].aggregate.measures[0].field: lines have no field "product_prise"`},
		{"summing a text field", edit("field: product_price, decimals: 2", "field: category, decimals: 2"), "field: category",
			`handlers[4].aggregate.measures[0].field: field "category" is text, not a number`},
		{"grouping by a field that is not the key, without repartition", edit("      repartition: location_product_count_by_location\n", ""), "aggregate:\n      group_by: to_location",
			`handlers[5].aggregate.repartition: group_by to_location is not the key of the input`},
		{"complete emission of a group that is not an order", edit("emit: changes", "emit: complete"), "emit: complete\n      emit_interval",
			`handlers[5].aggregate.emit: complete needs group_by order_id`},
		{"a delivery that outlasts the drain", edit("deliver_timeout: 15s", "deliver_timeout: 30s"), "deliver_timeout: 30s",
			"delivery.deliver_timeout: 30s must be shorter than kafka.drain_timeout (20s)"},
		{"a deliver timeout that cuts waiting lines", edit("      duration: 2m\n      - recoverer\n\n  # The original", "      duration: 1m\n      - recoverer\n\n  # The original"), "middleware:\n      - correlation_id\n      - poison_queue:\n          topic: poison_queue\n          permanent: [invalid_input, unknown_reference, no_partner, partner_rejected, conflict]",
			`handler "deliver": its timeout (1m0s) must be over delivery.assembly_timeout plus delivery.deliver_timeout (1m15s)`},
		{"unknown guarantee", edit("guarantee: at_least_once", "guarantee: exactly-once"), "guarantee: exactly-once",
			`kafka.guarantee: "exactly-once" is not at_least_once or exactly_once`},
		{"exactly once with the Sarama client", strings.Replace(edit("client: franz", "client: watermill-kafka"), "guarantee: at_least_once", "guarantee: exactly_once", 1), "guarantee: exactly_once",
			"kafka.guarantee: exactly_once needs the franz client: watermill-kafka's Sarama consumer commits offsets on its own"},
		{"an instance id Kafka refuses", edit(`instance_id: ""`, `instance_id: "router 1"`), `instance_id: "router 1"`,
			`kafka.instance_id: instance id "router 1" has ' ': Kafka takes letters, digits, '.', '_' and '-' only`},
		{"two instance ids", edit("instance_id: \"\"\n  instance_id_from_hostname: false", "instance_id: router-1\n  instance_id_from_hostname: true"), "instance_id_from_hostname: true",
			`kafka.instance_id_from_hostname: cannot be set with instance_id ("router-1")`},
		{"unknown error kind", edit("permanent: [invalid_input, unknown_reference, no_partner, partner_rejected, conflict, late]\n      after_retries: true\n  - retry", "permanent: [invalid_input, typo]\n      after_retries: true\n  - retry"), "permanent: [invalid_input, typo]",
			`unknown error kind "typo"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Load([]byte(tc.text), "orderflow.yaml", nil)
			var ce *config.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a config.ConfigError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not say %q", msg, tc.want)
			}
			line := lineOfText(tc.text, tc.needle)
			if !strings.Contains(msg, "orderflow.yaml:"+strconv.Itoa(line)+":") {
				t.Fatalf("error %q does not name line %d", msg, line)
			}
			if strings.Contains(msg, "hunter2") {
				t.Fatalf("error leaks the secret: %q", msg)
			}
		})
	}
}

func TestPoisonAfterRetryIsRejected(t *testing.T) {
	text := strings.Replace(testenv.Shipped(t), `  - poison_queue:
      topic: poison_queue
      permanent: [invalid_input, unknown_reference, no_partner, partner_rejected, conflict, late]
      after_retries: true
  - retry:
      max_retries: 3`, `  - retry:
      max_retries: 3`, 1)
	text = strings.Replace(text, "  - timeout:\n      duration: 30s\n  - recoverer\n\nhandlers:", "  - poison_queue:\n      topic: poison_queue\n  - timeout:\n      duration: 30s\n  - recoverer\n\nhandlers:", 1)
	_, err := config.Load([]byte(text), "f.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "poison_queue must come before retry") {
		t.Fatalf("got %v", err)
	}
}

func TestEnvironmentOverridesAnyValue(t *testing.T) {
	env := map[string]string{
		"ORDERFLOW_KAFKA_BROKERS":                                  "k1:9092, k2:9092",
		"ORDERFLOW_KAFKA_SASL_MECHANISM":                           "SCRAM-SHA-256",
		"ORDERFLOW_KAFKA_SASL_USERNAME":                            "app",
		"ORDERFLOW_KAFKA_SASL_PASSWORD":                            "s3cret-sasl",
		"ORDERFLOW_MONGODB_URI":                                    "mongodb://app:s3cret-uri@db:27017/",
		"ORDERFLOW_MONGODB_PASSWORD":                               "s3cret-mongo",
		"ORDERFLOW_HANDLERS_DELIVER_ENABLED":                       "false",
		"ORDERFLOW_HANDLERS_VALIDATE_MIDDLEWARE_RETRY_MAX_RETRIES": "7",
		"ORDERFLOW_MIDDLEWARE_RETRY_MAX_RETRIES":                   "5",
		"ORDERFLOW_TOPICS_RAW_ORDER_PARTITIONS":                    "16",
		"ORDERFLOW_KAFKA_COMMIT_INTERVAL":                          "250ms",
		"ORDERFLOW_DELIVERY_PARTNERS_PARTNER_ROUTE_2_SINK_PATH":    "/srv/p2",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", lookup)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Kafka.Brokers, ",") != "k1:9092,k2:9092" || cfg.Kafka.SASL.Password != "s3cret-sasl" ||
		cfg.MongoDB.Password != "s3cret-mongo" || cfg.Handlers[3].IsEnabled() || cfg.Topics["raw_order"].Partitions != 16 ||
		cfg.Kafka.CommitInterval.Duration != 250*time.Millisecond || cfg.Middleware[2].Retry.MaxRetries != 5 ||
		cfg.Delivery.Partners[0].Sink.Path != "/srv/p2" {
		t.Fatalf("environment not applied: %+v", cfg)
	}

	// The printed configuration masks every secret.
	out, err := cfg.Masked()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret-sasl", "s3cret-uri", "s3cret-mongo"} {
		if strings.Contains(string(out), secret) {
			t.Fatalf("config print shows %s:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "mongodb://app:****@db:27017/") || !strings.Contains(string(out), "password: '****'") {
		t.Fatalf("masked output:\n%s", out)
	}
	// The masked output is itself a valid configuration (minus secrets).
	if _, err := config.Load([]byte(strings.ReplaceAll(strings.ReplaceAll(string(out), "password: '****'", "password: \"\""), "app:****@", "")), "printed", nil); err != nil {
		t.Fatalf("printed configuration does not load: %v", err)
	}

	bad := func(k string) (string, bool) {
		if k == "ORDERFLOW_KAFKA_MAX_IN_FLIGHT" {
			return "lots", true
		}
		return "", false
	}
	if _, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", bad); err == nil || !strings.Contains(err.Error(), "ORDERFLOW_KAFKA_MAX_IN_FLIGHT") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func TestPartnerSecretsNameTheVariableTheLoaderReads(t *testing.T) {
	text := strings.Replace(testenv.Shipped(t), "sink: {type: dir, path: out/partner-route-2}", `sink: {type: http, url: "https://user:pw@partner.example/orders", token: t0ken}`, 1)
	_, err := config.Load([]byte(text), "orderflow.yaml", nil)
	if err == nil {
		t.Fatal("a partner URL with user info and a token in the file were accepted")
	}
	msg := err.Error()
	for _, want := range []string{"sink.url: the URL holds user info", "sink.token: secrets must not be written in the file: set ORDERFLOW_DELIVERY_PARTNERS_PARTNER_ROUTE_2_SINK_TOKEN"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "PARTNERS_0_") || strings.Contains(msg, "pw@") || strings.Contains(msg, "t0ken") {
		t.Errorf("error names an index form or leaks a secret: %q", msg)
	}
	// What the loader reads by that name it really reads.
	env := func(k string) (string, bool) {
		return "t0ken", k == "ORDERFLOW_DELIVERY_PARTNERS_PARTNER_ROUTE_2_SINK_TOKEN"
	}
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", env)
	if err != nil || cfg.Delivery.Partners[0].Sink.Token != "t0ken" {
		t.Fatalf("token by name: %v", err)
	}
}

func TestOversizedConfigurationIsRefused(t *testing.T) {
	huge := testenv.Shipped(t) + "\n# " + strings.Repeat("x", config.MaxConfigBytes)
	_, err := config.Load([]byte(huge), "huge.yaml", nil)
	var ce *config.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "over the 1048576-byte limit") {
		t.Fatalf("got %v", err)
	}
}

// TestInstanceIDFromHostname: replicas without a name of their own (compose
// --scale) are static members under their host name, which must be one
// Kafka takes as an instance id.
func TestInstanceIDFromHostname(t *testing.T) {
	env := map[string]string{"ORDERFLOW_KAFKA_INSTANCE_ID_FROM_HOSTNAME": "true"}
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	host := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	if id, err := cfg.Kafka.ResolveInstanceID(host("3f2a9c1b7d4e", nil)); err != nil || id != "3f2a9c1b7d4e" {
		t.Fatalf("from a container's host name: %q, %v", id, err)
	}
	if _, err := cfg.Kafka.ResolveInstanceID(host("router one", nil)); err == nil || !strings.Contains(err.Error(), "kafka.instance_id_from_hostname") {
		t.Fatalf("a host name Kafka refuses: %v", err)
	}
	if _, err := cfg.Kafka.ResolveInstanceID(host("", errors.New("no uname"))); err == nil || !strings.Contains(err.Error(), "no uname") {
		t.Fatalf("no host name: %v", err)
	}
	cfg.Kafka.InstanceIDFromHostname = false
	if id, err := cfg.Kafka.ResolveInstanceID(host("3f2a9c1b7d4e", nil)); err != nil || id != "" {
		t.Fatalf("dynamic membership by default: %q, %v", id, err)
	}
}
