package app

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/httpapi"
	"github.com/orderflow/orderflow/status"
)

// Mongo is a connected MongoDB client and the pipeline's database.
type Mongo struct {
	Client *mongo.Client
	DB     *mongo.Database
	// Commands counts the commands sent, by the driver's command monitor.
	Commands *CommandCounter
}

// CommandCounter counts MongoDB commands.
type CommandCounter struct {
	total     atomic.Int64
	onCommand func(name string)
}

// Total returns the number of commands sent so far.
func (c *CommandCounter) Total() int64 { return c.total.Load() }

// ConnectMongo connects to the configured MongoDB. It does not wait for the
// server; the first command does. onCommand, when set, is called with the
// name of every command sent (metrics).
func ConnectMongo(cfg config.MongoConfig, onCommand ...func(name string)) (*Mongo, error) {
	if cfg.URI == "" {
		return nil, config.ErrNoMongo
	}
	counter := &CommandCounter{}
	if len(onCommand) > 0 {
		counter.onCommand = onCommand[0]
	}
	opts := options.Client().ApplyURI(cfg.URI).
		SetServerSelectionTimeout(cfg.Timeout.Duration).
		SetAppName("orderflow").
		SetMonitor(&event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
			counter.total.Add(1)
			if counter.onCommand != nil {
				counter.onCommand(e.CommandName)
			}
		}})
	opts.SetWriteConcern(writeConcern(cfg))
	if cfg.MaxPoolSize > 0 {
		opts.SetMaxPoolSize(uint64(cfg.MaxPoolSize))
	}
	if cfg.Username != "" {
		cred := options.Credential{Username: cfg.Username, Password: cfg.Password, AuthSource: cfg.AuthSource, AuthMechanism: cfg.AuthMechanism}
		opts.SetAuth(cred)
	}
	if cfg.TLS.Enabled {
		t, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("mongodb tls: %w", err)
		}
		opts.SetTLSConfig(t)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb at %s: %w", config.MaskURI(cfg.URI), err)
	}
	return &Mongo{Client: client, DB: client.Database(cfg.Database), Commands: counter}, nil
}

// writeConcern is the configured write concern, always with the journal.
func writeConcern(cfg config.MongoConfig) *writeconcern.WriteConcern {
	journal := true
	if cfg.WriteConcern == "1" {
		return &writeconcern.WriteConcern{W: 1, Journal: &journal}
	}
	return &writeconcern.WriteConcern{W: "majority", Journal: &journal}
}

// Close disconnects.
func (m *Mongo) Close(ctx context.Context) error {
	if err := m.Client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from mongodb: %w", err)
	}
	return nil
}

// StatusReader returns the order status reader the configuration describes.
func StatusReader(cfg *config.Config, db *mongo.Database) *status.Reader {
	r := status.NewReader(db.Collection(status.Collection), cfg.DeliveryEnabled())
	r.OpenQuiet = cfg.Status.OpenOrderQuiet.Duration
	return r
}

// CurrentStatusReader returns the reader of current statuses: the
// order_status view when it is kept, whose reads do not grow with the
// history, or nil (the records then answer everything).
func CurrentStatusReader(cfg *config.Config, db *mongo.Database) *status.ViewReader {
	if !cfg.Status.OrderStatusEnabled() {
		return nil
	}
	return status.NewViewReader(db, cfg.DeliveryEnabled())
}

// currentStatusSource is CurrentStatusReader for the API: nil stays an
// untyped nil, so the API falls back to the records.
func currentStatusSource(cfg *config.Config, db *mongo.Database) httpapi.StatusSource {
	if r := CurrentStatusReader(cfg, db); r != nil {
		return r
	}
	return nil
}
