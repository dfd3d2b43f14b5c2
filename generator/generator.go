// Package generator publishes random orders to the generator topic, one
// message per line, keyed by order id, and records each line as generated
// once its publish succeeded: `orderflow generate`, the demo, the bench and
// the tests.
package generator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
	"github.com/orderflow/orderflow/tracing"
)

// Options configure a run of the order generator.
type Options struct {
	Orders int
	// Rate is the most orders per second; zero is as fast as possible.
	Rate float64
	// Seed makes the orders reproducible; zero picks one at random.
	Seed   uint64
	Logger *slog.Logger
	// Progress, when set, is called after each order with the count so far.
	Progress func(done int)
	// OnStatusWrite, when set, sees every status write, as
	// status.RecorderConfig.OnWrite: the demo counts the generator's lines in
	// its metrics with it.
	OnStatusWrite func(recs []status.Record, took time.Duration, err error)
}

// Result describes what a generator run published.
type Result struct {
	Orders    int
	Lines     int
	FirstID   int64
	LastID    int64
	IDs       []int64
	StartedAt time.Time
	Took      time.Duration
	// MongoCommands is the number of MongoDB commands the run sent.
	MongoCommands int64
}

// Generate publishes random orders to the generator topic, one message per
// line, and records each line as generated once its publish succeeded.
func Generate(ctx context.Context, cfg *config.Config, opts Options) (res Result, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Orders <= 0 {
		return res, errors.New("generate: the number of orders must be positive")
	}
	k, err := kafkaclient.New(cfg.Kafka, cfg.Tracing.Enabled, log)
	if err != nil {
		return res, err
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return res, err
	}
	defer m.Close(context.Background())
	if err := k.EnsureTopics(ctx, cfg.Topics); err != nil {
		return res, fmt.Errorf("create topics: %w", err)
	}
	snap, err := metastore.NewStore(m.DB).Snapshot(ctx)
	if err != nil {
		return res, fmt.Errorf("load metadata: %w", err)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	// The generator writes no order_status document: the router inserts an
	// order's "generated" with its first stage, which costs one insert
	// where two processes would cost an insert and a refused duplicate.
	recorder, err := status.NewRecorder(m.DB.Collection(status.Collection), status.RecorderConfig{
		MaxBatch: cfg.Status.MaxBatch, WriteTimeout: cfg.Status.WriteTimeout.Duration, Logger: log, Retry: true,
		OnWrite: opts.OnStatusWrite,
	})
	if err != nil {
		return res, err
	}
	defer recorder.Close()
	kpub, err := k.NewPublisher()
	if err != nil {
		return res, err
	}
	defer kpub.Close()
	pub := &status.Publisher{Next: kpub, Writer: recorder, Status: status.Generated, Context: ctx}
	ids := &idBlocks{seq: metastore.NewSequence(m.DB)}
	catalog := snap.Catalog()

	var pace <-chan time.Time
	if opts.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
		defer t.Stop()
		pace = t.C
	}
	res.StartedAt = time.Now()
	// Without a rate, each worker publishes orders in chunks: one publish
	// and one status write for many orders.
	chunk := 64
	if opts.Rate > 0 {
		chunk = 1
	}
	work := make(chan int)
	var (
		mu        sync.Mutex
		firstErr  error
		published atomic.Int64
		wg        sync.WaitGroup
	)
	workers := min(cfg.Generator.Workers, opts.Orders)
	for w := range workers {
		gen, err := order.NewGenerator(catalog, cfg.Generator.FraudShare, seed+uint64(w))
		if err != nil {
			return res, fmt.Errorf("generate: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				orders := make([]order.Order, 0, n)
				var err error
				for range n {
					var id int64
					if id, err = ids.take(ctx); err != nil {
						break
					}
					orders = append(orders, gen.Order(id))
				}
				if err == nil {
					err = PublishOrders(pub, cfg.Generator.Topic, orders)
				}
				if err == nil {
					mu.Lock()
					for _, o := range orders {
						res.Orders++
						res.Lines += len(o.Products)
						res.IDs = append(res.IDs, o.ID)
					}
					mu.Unlock()
					if n := published.Add(int64(len(orders))); opts.Progress != nil {
						opts.Progress(int(n))
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := 0; i < opts.Orders; i += chunk {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				break feed
			}
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		select {
		case work <- min(chunk, opts.Orders-i):
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	res.Took = time.Since(res.StartedAt)
	recorder.Close() // flush before counting
	res.MongoCommands = m.Commands.Total()
	if len(res.IDs) > 0 {
		res.FirstID, res.LastID = res.IDs[0], res.IDs[0]
		for _, id := range res.IDs {
			res.FirstID, res.LastID = min(res.FirstID, id), max(res.LastID, id)
		}
	}
	if firstErr != nil {
		return res, fmt.Errorf("generate: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("generate: stopped after %d orders: %w", res.Orders, err)
	}
	return res, nil
}

// PublishOrders publishes the lines of orders together, each order under
// one correlation id.
func PublishOrders(pub message.Publisher, topic string, orders []order.Order) error {
	var msgs []*message.Message
	for _, o := range orders {
		correlation := uuid.NewString()
		ctx, span := tracing.Start(context.Background(), "generate", attribute.Int64("orderflow.order_id", o.ID))
		span.End()
		for _, l := range order.Flatten(o) {
			msg := message.NewMessage(uuid.NewString(), order.Encode(l))
			wmmiddleware.SetCorrelationID(correlation, msg)
			tracing.Inject(ctx, msg)
			msg.SetContext(status.WithLine(context.Background(), status.LineRef{
				OrderID: l.OrderID, Line: l.LineIndex, Lines: l.LineCount, Stage: status.Generated,
				Handler: "generate", Topic: topic,
			}))
			msgs = append(msgs, msg)
		}
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish %d orders from %d: %w", len(orders), orders[0].ID, err)
	}
	return nil
}

// idBlocks hands out order ids from blocks claimed in MongoDB.
type idBlocks struct {
	seq        *metastore.Sequence
	mu         sync.Mutex
	next, last int64
}

func (b *idBlocks) take(ctx context.Context) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == 0 || b.next > b.last {
		first, last, err := b.seq.Reserve(ctx)
		if err != nil {
			return 0, err
		}
		b.next, b.last = first, last
	}
	id := b.next
	b.next++
	return id, nil
}
