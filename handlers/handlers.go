// Package handlers holds the logic of each pipeline stage, one file a stage,
// as plain functions over decoded order lines. They know nothing of Kafka or
// the router: app decodes a message, calls the processor and publishes what
// it returns, so each processor is tested without a broker.
//
// To add a stage, write a Processor in a file of its own and register it in
// Registry; a handler entry in the configuration then names it.
package handlers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

// Processor is the logic of one stage: it takes a line and says what becomes
// of it. An error marked failure.Permanent sends the line to the poison
// queue; any other error is retried.
type Processor func(ctx context.Context, line order.Line) (Outcome, error)

// Outcome is what a processor decided for a line.
type Outcome struct {
	// Line is the line to publish, usually the input with fields added.
	Line order.Line
	// Route names the output for processors with several ("internal",
	// "external"); empty for the only output.
	Route string
	// Rejected, when set, stops the line: nothing is published and the
	// order is rejected with this reason.
	Rejected string
	// Settled means the processor has finished with the line itself (the
	// delivery stage records its own status): nothing is published.
	Settled bool
}

// FraudList tells whether an IP is on the fraud list.
type FraudList interface {
	IsFraud(ip string) bool
}

// LocationNames resolves location ids. ok is false for an unknown id; err is
// set only when the metadata could not be read.
type LocationNames interface {
	LocationName(ctx context.Context, id int64) (name string, ok bool, err error)
}

// ProductCatalog resolves product ids, like LocationNames.
type ProductCatalog interface {
	Product(ctx context.Context, id int64) (p metastore.Product, ok bool, err error)
}

// Deps is what processors are built from.
type Deps struct {
	Fraud     FraudList
	Locations LocationNames
	Products  ProductCatalog
	// Status records statuses a processor settles itself.
	Status status.Writer
	// Delivery configures the deliver processor.
	Delivery DeliveryConfig
	// Stopping is closed when the process starts shutting down, so that a
	// processor holding a message for others (delivery) lets it go at once.
	Stopping <-chan struct{}
	Logger   *slog.Logger
	// Handler is the configuration of the handler being built.
	Handler config.HandlerConfig
	// Counter returns the aggregation of an aggregating handler.
	Counter func(h config.HandlerConfig) (Counter, error)
}

// Kind describes a registered processor.
type Kind struct {
	// New builds the processor.
	New func(Deps) (Processor, error)
	// Publishes says the processor has one output topic ("publish").
	Publishes bool
	// Routes names the outputs of a processor with several ("routes").
	Routes []string
	// Doc says in a line what the processor does.
	Doc string
	// Fields, for a processor that aggregates, are the line fields it
	// reads (see config.ProcessorSpec).
	Fields map[string]string
}

// init makes every processor of Registry known to the configuration's
// checks.
func init() {
	for name, k := range Registry {
		config.RegisterProcessor(name, config.ProcessorSpec{Routes: k.Routes, Publishes: k.Publishes, Doc: k.Doc, Fields: k.Fields})
	}
}

// Registry is every processor a handler can name.
var Registry = map[string]Kind{
	"validate": {
		New:       func(d Deps) (Processor, error) { return Validate(d.Fraud), nil },
		Publishes: true,
		Doc:       "rejects lines whose IP is on the fraud list",
	},
	"enrich": {
		New:       func(d Deps) (Processor, error) { return Enrich(d.Locations), nil },
		Publishes: true,
		Doc:       "adds the names of the from and to locations",
	},
	"route": {
		New:    func(d Deps) (Processor, error) { return Route(d.Products), nil },
		Routes: []string{order.RouteInternal, order.RouteExternal},
		Doc:    "sends route 1 products internal and the others external",
	},
	"deliver": {
		New: func(d Deps) (Processor, error) { return NewDeliverer(d) },
		Doc: "delivers external orders to partners' directories or HTTP endpoints",
	},
	"aggregate": {
		New: func(d Deps) (Processor, error) {
			if d.Counter == nil {
				return nil, errors.New("aggregate: no aggregation to count into (Deps.Counter)")
			}
			c, err := d.Counter(d.Handler)
			if err != nil {
				return nil, err
			}
			return Aggregate(c), nil
		},
		Publishes: true,
		Doc:       "counts lines into a streaming aggregation (sums and counts per group), exactly once",
		Fields:    aggregate.Fields(),
	},
}
