// Package mongoclient connects to the configured MongoDB: credentials, TLS,
// the durable write concern, and a count of the commands sent (metrics and
// the bench's commands per line).
package mongoclient

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/orderflow/orderflow/config"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

// Conn is a connected MongoDB client and the pipeline's database.
type Conn struct {
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

// Connect connects to the configured MongoDB. It does not wait for the
// server; the first command does. onCommand, when set, is called with the
// name of every command sent (metrics).
func Connect(cfg config.MongoConfig, onCommand ...func(name string)) (*Conn, error) {
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
	opts.SetWriteConcern(WriteConcern(cfg))
	if cfg.MaxPoolSize > 0 {
		opts.SetMaxPoolSize(uint64(cfg.MaxPoolSize))
	}
	if cfg.Username != "" {
		cred := options.Credential{Username: cfg.Username, Password: cfg.Password, AuthSource: cfg.AuthSource, AuthMechanism: cfg.AuthMechanism}
		opts.SetAuth(cred)
	}
	if cfg.TLS.Enabled {
		t, err := cfg.TLS.Load()
		if err != nil {
			return nil, fmt.Errorf("mongodb tls: %w", err)
		}
		opts.SetTLSConfig(t)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to mongodb at %s: %w", config.MaskURI(cfg.URI), err)
	}
	return &Conn{Client: client, DB: client.Database(cfg.Database), Commands: counter}, nil
}

// WriteConcern is the configured write concern, always with the journal.
func WriteConcern(cfg config.MongoConfig) *writeconcern.WriteConcern {
	journal := true
	if cfg.WriteConcern == "1" {
		return &writeconcern.WriteConcern{W: 1, Journal: &journal}
	}
	return &writeconcern.WriteConcern{W: "majority", Journal: &journal}
}

// Close disconnects.
func (m *Conn) Close(ctx context.Context) error {
	if err := m.Client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from mongodb: %w", err)
	}
	return nil
}
