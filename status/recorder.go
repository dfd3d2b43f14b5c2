package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/internal/mongoerr"
)

// Collection is where the status records are kept.
const Collection = "order_events"

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// MaxBatch is the most records one write carries.
	MaxBatch int
	// MaxDocRecords is the most records one document holds. Records of one
	// stage and handler share a document, so a write is a few large inserts.
	MaxDocRecords int
	// WriteTimeout bounds one write; a write that times out fails its batch,
	// whose messages are then redelivered.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Retry makes Record retry a failed write, with backoff, until it
	// succeeds or the caller's context ends, instead of failing at once. A
	// MongoDB outage then pauses the callers (and with them the pipeline)
	// rather than making them redeliver, and publish again, every message.
	Retry bool
	// View, when set, is kept from every batch written: the order_status
	// collection (see ViewCollection), written after the records.
	View *View
	// OnWrite, when set, is called after every write with its records, how
	// long it took and its error. Metrics hang here.
	OnWrite func(recs []Record, took time.Duration, err error)
}

func (c *RecorderConfig) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = 4000
	}
	if c.MaxDocRecords == 0 {
		c.MaxDocRecords = 1000
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c RecorderConfig) Validate() error {
	if c.MaxBatch < 1 || c.MaxDocRecords < 1 || c.WriteTimeout <= 0 {
		return errors.New("status recorder: batch sizes and write timeout must be positive")
	}
	return nil
}

// Recorder writes status records in batches: every record handed to Record
// while a write is in flight goes into the next write, so the number of
// MongoDB round trips falls as the load rises (group commit). Record returns
// when its records are durable.
type Recorder struct {
	coll *mongo.Collection
	cfg  RecorderConfig

	mu      sync.Mutex
	queue   []*batch
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

type batch struct {
	recs []Record
	done chan struct{}
	err  error
}

// NewRecorder starts a recorder writing to coll. Close stops it.
func NewRecorder(coll *mongo.Collection, cfg RecorderConfig) (*Recorder, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Recorder{coll: coll, cfg: cfg, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go r.run()
	return r, nil
}

// EnsureIndexes creates the indexes that find an order's records, and the
// records of a range of orders, on a real MongoDB (the embedded server scans
// regardless). Every command that reads them calls it.
func EnsureIndexes(ctx context.Context, coll *mongo.Collection) error {
	// One at a time: FerretDB v1 drops the connection on a createIndexes
	// with several.
	for _, keys := range []bson.D{
		{{Key: "orders", Value: 1}},                        // one order's records
		{{Key: "omin", Value: 1}, {Key: "omax", Value: 1}}, // range reads
	} {
		if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys}); err != nil {
			return fmt.Errorf("create index %v on %s: %w", keys, coll.Name(), err)
		}
	}
	return nil
}

var errClosed = errors.New("status recorder is closed")

// Record queues recs for the next write and waits until it is done. It fails
// when the write fails (with Retry set, only once the recorder is closed),
// or when ctx ends first; the records may then still be written, which is
// harmless because records are idempotent.
func (r *Recorder) Record(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	return r.recordOnce(ctx, recs)
}

func (r *Recorder) recordOnce(ctx context.Context, recs []Record) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return failure.Unavailable(errClosed)
	}
	var b *batch
	if n := len(r.queue); n > 0 && len(r.queue[n-1].recs)+len(recs) <= r.cfg.MaxBatch {
		b = r.queue[n-1]
	} else {
		b = &batch{done: make(chan struct{})}
		r.queue = append(r.queue, b)
	}
	b.recs = append(b.recs, recs...)
	select { // under mu, so Close cannot close wake in between
	case r.wake <- struct{}{}:
	default:
	}
	r.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("wait for status write: %w", ctx.Err())
	}
}

// Close writes what is queued and stops the recorder.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.wake)
	r.mu.Unlock()
	<-r.stopped
	return nil
}

func (r *Recorder) run() {
	defer close(r.stopped)
	for {
		r.mu.Lock()
		var b *batch
		if len(r.queue) > 0 {
			b = r.queue[0]
			r.queue = r.queue[1:]
		}
		r.mu.Unlock()
		if b == nil {
			if _, ok := <-r.wake; !ok {
				r.mu.Lock()
				empty := len(r.queue) == 0
				r.mu.Unlock()
				if empty {
					return
				}
			}
			continue
		}
		b.err = r.writeBatch(b.recs)
		close(b.done)
	}
}

// writeBatch writes recs, and with Retry set writes them again, with
// backoff, until it succeeds or the recorder is closed. Every attempt
// inserts the same documents, with the same _ids: a write that timed out
// on the client but was done on the server is found there (duplicate keys)
// instead of inserted twice.
func (r *Recorder) writeBatch(recs []Record) error {
	start := time.Now()
	docs := toDocs(recs, r.cfg.MaxDocRecords, start)
	wait := 100 * time.Millisecond
	for {
		err := r.write(recs, docs, start)
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if err == nil || !r.cfg.Retry || closed {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

func (r *Recorder) write(recs []Record, docs []any, start time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	_, err := r.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if mongoerr.OnlyDuplicateKeys(err) {
		err = nil // written by an earlier attempt
	}
	if err == nil && r.cfg.View != nil {
		err = r.cfg.View.apply(ctx, recs, start)
	}
	if r.cfg.OnWrite != nil {
		r.cfg.OnWrite(recs, time.Since(start), err)
	}
	if err != nil {
		r.cfg.Logger.Warn("status write failed; its messages will be redelivered", "records", len(recs), "error", err)
		return failure.Unavailable(fmt.Errorf("write %d status records: %w", len(recs), err))
	}
	return nil
}

type docKey struct {
	status, stage                 Status
	handler, topic, output, route string
}

func toDocs(recs []Record, maxPerDoc int, now time.Time) []any {
	// The written time is stored as a BSON date, in milliseconds; record
	// times are microseconds after it, so it must round-trip exactly.
	now = now.Truncate(time.Millisecond)
	groups := map[docKey]*batchDoc{}
	var docs []any
	for _, rec := range recs {
		k := docKey{rec.Status, rec.Stage, rec.Handler, rec.Topic, rec.Output, rec.Route}
		if rec.Status != Failed {
			k.stage = ""
		}
		d := groups[k]
		if d == nil || len(d.Recs) >= maxPerDoc {
			d = &batchDoc{ID: bson.NewObjectID(), Status: k.status, Stage: k.stage, Handler: k.handler,
				Topic: k.topic, Output: k.output, Route: k.route, Written: now}
			groups[k] = d
			docs = append(docs, d)
		}
		d.Recs = append(d.Recs, recDoc{
			OrderID: rec.OrderID, Line: int32(rec.Line), Lines: int32(rec.Lines),
			Time: rec.Time, Partition: rec.Partition, Offset: rec.Offset,
			Reason: failure.Reason(rec.Reason), Partner: rec.Partner, Detail: failure.Reason(rec.Detail),
		})
	}
	for _, d := range docs {
		d.(*batchDoc).pack()
	}
	return docs
}
