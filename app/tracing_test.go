package app

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestTracingFollowsALineThroughTheStages checks that, with tracing on, the
// spans of one line at every stage form one trace, each the child of the
// stage before.
func TestTracingFollowsALineThroughTheStages(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) { c.Tracing.Enabled = true })
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, discard{}); err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewInMemoryExporter()
	runCtx, cancel := context.WithCancel(ctx)
	p, err := NewPipeline(runCtx, cfg, Options{Logger: quietLogger(), SpanExporter: keepSpans{spans}})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx, running) }()
	<-running
	res, err := generator.Generate(ctx, cfg, generator.Options{Orders: 20, Seed: 3, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	waitAllFinal(t, cfg, res.FirstID, res.LastID, 20, time.Minute)
	cancel()
	if err := <-done; err != nil { // flushes the spans
		t.Fatal(err)
	}

	byName := map[string]int{}
	byID := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name]++
		byID[s.SpanContext.SpanID().String()] = s
	}
	for _, name := range []string{"generate", "validate", "enrich", "route"} {
		if byName[name] == 0 {
			t.Fatalf("no %s span: %v", name, byName)
		}
	}
	// Walk up from a route span: enrich, validate, generate, in one trace.
	chains := 0
	for _, s := range spans.GetSpans() {
		if s.Name != "route" {
			continue
		}
		var names []string
		cur := s
		for {
			names = append(names, cur.Name)
			parent, ok := byID[cur.Parent.SpanID().String()]
			if !ok || !cur.Parent.IsValid() {
				break
			}
			if parent.SpanContext.TraceID() != s.SpanContext.TraceID() {
				t.Fatalf("trace changes between %s and %s", cur.Name, parent.Name)
			}
			cur = parent
		}
		if len(names) == 4 && names[1] == "enrich" && names[2] == "validate" && names[3] == "generate" {
			chains++
		}
	}
	if chains == 0 {
		t.Fatal("no route span leads back through enrich and validate to generate")
	}
}

// keepSpans keeps the spans when the provider shuts down, which the
// in-memory exporter would forget.
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
