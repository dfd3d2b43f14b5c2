package app

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestAcceptedConfigurationsBuild is a property test: configurations made by
// random edits of the shipped one (handlers disabled, outputs pointed
// elsewhere, stacks changed, --only lists) either are refused by config.Load, with
// a config.ConfigError, or build a pipeline on the embedded servers without error.
// None panics.
func TestAcceptedConfigurationsBuild(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	mongoURI := testenv.MongoURI(t)
	base := testConfig(t, brokers, mongoURI, nil)
	topics := []string{"raw_order", "valid_orders", "enriched_order_details", "internal_routed_order", "external_routed_order", "poison_queue"}
	edits := []func(r *rand.Rand, text string) string{
		func(r *rand.Rand, text string) string { // disable a handler
			name := []string{"validate", "enrich", "route", "deliver"}[r.IntN(4)]
			return strings.Replace(text, "  - name: "+name+"\n", "  - name: "+name+"\n    enabled: false\n", 1)
		},
		func(r *rand.Rand, text string) string { // point an output elsewhere
			from := []string{"publish: valid_orders", "publish: enriched_order_details", "internal: internal_routed_order", "external: external_routed_order"}[r.IntN(4)]
			key, _, _ := strings.Cut(from, ": ")
			return strings.Replace(text, from, key+": "+topics[r.IntN(len(topics))], 1)
		},
		func(r *rand.Rand, text string) string { // point an input elsewhere
			from := []string{"subscribe: raw_order", "subscribe: valid_orders", "subscribe: enriched_order_details", "subscribe: external_routed_order"}[r.IntN(4)]
			return strings.Replace(text, from, "subscribe: "+topics[r.IntN(len(topics))], 1)
		},
		func(r *rand.Rand, text string) string { // after_retries off
			return strings.Replace(text, "after_retries: true", "after_retries: false", 1)
		},
		func(r *rand.Rand, text string) string { // declare redeliver_forever or a cycle on purpose
			name := []string{"validate", "enrich", "route", "deliver"}[r.IntN(4)]
			flag := []string{"redeliver_forever: true", "allow_cycle: true"}[r.IntN(2)]
			return strings.Replace(text, "  - name: "+name+"\n", "  - name: "+name+"\n    "+flag+"\n", 1)
		},
		func(r *rand.Rand, text string) string { // mark a topic external
			topic := topics[r.IntN(len(topics)-1)]
			return strings.Replace(text, "  "+topic+": {partitions: 8}", "  "+topic+": {partitions: 8, external: true}", 1)
		},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	accepted, built := 0, 0
	for i := range 40 {
		text := testenv.Shipped(t)
		for range 1 + rng.IntN(4) {
			text = edits[rng.IntN(len(edits))](rng, text)
		}
		cfg, err := config.Load([]byte(text), "random.yaml", nil)
		if err != nil {
			var ce *config.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("case %d: config.Load failed without a ConfigError: %v", i, err)
			}
			continue
		}
		accepted++
		cfg.Kafka, cfg.MongoDB, cfg.HTTP, cfg.Delivery = base.Kafka, base.MongoDB, base.HTTP, base.Delivery
		var only []string
		if rng.IntN(2) == 0 {
			for _, h := range cfg.Handlers {
				if h.IsEnabled() && rng.IntN(2) == 0 {
					only = append(only, h.Name)
				}
			}
		}
		if err := cfg.CheckOnly(only); err != nil {
			t.Fatalf("case %d: --only %v of enabled handlers refused: %v", i, only, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p, err := NewPipeline(ctx, cfg, Options{Only: only, Logger: quietLogger()})
		cancel()
		if err != nil {
			t.Fatalf("case %d: config check accepted it, but the pipeline does not build: %v\n%s", i, err, text)
		}
		p.Close()
		built++
	}
	if accepted < 5 || accepted == 40 {
		t.Fatalf("%d of 40 random configurations accepted: the edits do not exercise both outcomes", accepted)
	}
	t.Logf("%d of 40 accepted and built", built)
}
