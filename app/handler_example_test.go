package app

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/order"
)

// TestReadmeAddingAHandlerWorksAsWritten takes the README's "Adding a
// handler" example as written, adds it to the shipped configuration, runs it
// and reads a line on the new handler's output topic.
func TestReadmeAddingAHandlerWorksAsWritten(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### Adding a handler")
	if !ok {
		t.Fatal("README has no Adding a handler section")
	}
	_, block, _ := strings.Cut(section, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	topics, handlers, ok := strings.Cut(block, "\nhandlers:\n")
	if !ok {
		t.Fatalf("the example has no handlers: %q", block)
	}
	topics = strings.TrimPrefix(topics, "topics:\n")
	text := strings.Replace(testenv.Shipped(t), "\ntopics:\n", "\ntopics:\n"+topics, 1)
	text = strings.Replace(text, "\nhandlers:\n", "\nhandlers:\n"+handlers, 1)

	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), nil)
	loaded, err := config.Load([]byte(text), "my.yaml", nil)
	if err != nil {
		t.Fatalf("the README's example does not load: %v", err)
	}
	loaded.Kafka, loaded.MongoDB, loaded.HTTP, loaded.Delivery = cfg.Kafka, cfg.MongoDB, cfg.HTTP, cfg.Delivery
	if loaded.Handlers[0].Name != "recheck" || loaded.StackFor(loaded.Handlers[0])[2].Retry.MaxRetries != 5 {
		t.Fatalf("the example's handler: %+v", loaded.Handlers[0])
	}
	if top := loaded.Topology().String(); !strings.Contains(top, "recheck (validate)\n  consumes   enriched_order_details in group recheck_group\n  publishes  checked_orders") {
		t.Fatalf("topology does not show the new handler:\n%s", top)
	}
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, loaded, io.Discard); err != nil {
		t.Fatal(err)
	}
	startPipeline(t, loaded)
	publishTestOrders(t, loaded, []order.Order{makeOrder(960001, 1000)}, 0)
	deadline := time.Now().Add(time.Minute)
	for {
		for _, r := range testenv.ReadTopic(t, brokers, "checked_orders") {
			if l, err := order.DecodeLine(r.Value); err == nil && l.OrderID == 960001 && l.FromLocationName != "" {
				return // enriched, then checked by the new handler
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no line of order 960001 on checked_orders")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
