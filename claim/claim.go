// Package claim keeps, for every order line that enters the pipeline, the
// first copy read: a fingerprint of its content and where it was read. A
// later copy of the same line (same order, same line) with the same content
// is a redelivery and goes on; one with other content is a conflict (a
// reused order id, a producer that changed a line and sent it again), and
// the first copy stands.
//
// A claim is a document with a unique _id, inserted once and never changed:
// the duplicate key of the insert says a copy was there, and one find by
// _id reads it. That is correct on MongoDB and on FerretDB, which pushes
// down only _id equality, and it holds across routers and restarts, which
// an in-memory set does not.
package claim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/internal/mongoerr"
)

// Collection is where the claims are kept.
const Collection = "line_claims"

// Line is one copy of an order line, as read where it entered the pipeline.
type Line struct {
	OrderID int64
	// Ident is the line within its order: its index, or for a line in the
	// original system's format (Open) its product id.
	Ident int
	Open  bool
	// Fingerprint identifies the line's content (order.Line.Fingerprint).
	Fingerprint string
	Topic       string
	Partition   int32
	Offset      int64
}

// ID is the claim's _id: "<order>:<line>", or "<order>:p<product>" for an
// open line.
func (l Line) ID() string {
	id := strconv.FormatInt(l.OrderID, 10) + ":"
	if l.Open {
		id += "p"
	}
	return id + strconv.Itoa(l.Ident)
}

// Position says where the copy was read: "raw_order/3@1234".
func (l Line) Position() string {
	return l.Topic + "/" + strconv.Itoa(int(l.Partition)) + "@" + strconv.FormatInt(l.Offset, 10)
}

func (l Line) describe() string {
	if l.Open {
		return fmt.Sprintf("the line of product %d of order %d", l.Ident, l.OrderID)
	}
	return fmt.Sprintf("line %d of order %d", l.Ident, l.OrderID)
}

// Conflict is a copy of a line whose content differs from the first copy's.
type Conflict struct {
	First, Copy Line
}

func (c *Conflict) Error() string {
	return fmt.Sprintf("%s at %s differs from its first copy, at %s: the first copy stands",
		c.Copy.describe(), c.Copy.Position(), c.First.Position())
}

// Config configures a Store.
type Config struct {
	// MaxBatch is the most claims one insert carries.
	MaxBatch int
	// WriteTimeout bounds one write; a claim whose write fails is
	// unavailable, and its message is redelivered.
	WriteTimeout time.Duration
	// Remember is how many of the claims it wrote or read a store keeps in
	// memory (about 150 bytes each): a copy of one of those lines, as an
	// aborted transaction's rewind sends, is answered without a write or
	// a read.
	Remember int
	// Readers is how many claims of lines claimed before are read back at
	// once, for copies the store does not remember (a restarted router's
	// replay).
	Readers int
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = 1000
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Remember == 0 {
		c.Remember = 1 << 16
	}
	if c.Readers == 0 {
		c.Readers = 8
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxBatch < 1 || c.WriteTimeout <= 0 || c.Remember < 1 || c.Readers < 1 {
		return errors.New("line claims: the batch size, the write timeout, the claims remembered and the readers must be positive")
	}
	return nil
}

// Store claims lines in batches: every claim asked for while a write is in
// flight goes into the next write, as the status recorder does, so a claim
// costs a share of one insert, and a find by _id only for a copy of a line
// claimed before that the store does not remember.
type Store struct {
	coll *mongo.Collection
	cfg  Config

	mu      sync.Mutex
	queue   []*request
	known   known // the claims written or read, under mu
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

// known is the newest claims a store wrote or read, by _id. A claim never
// changes once inserted, so what is remembered stays true.
type known struct {
	lines map[string]Line
	ring  []string // the ids, oldest at next once full
	next  int
}

func newKnown(n int) known { return known{lines: map[string]Line{}, ring: make([]string, 0, n)} }

func (k *known) add(id string, l Line) {
	if _, ok := k.lines[id]; ok {
		return
	}
	if len(k.ring) < cap(k.ring) {
		k.ring = append(k.ring, id)
	} else {
		delete(k.lines, k.ring[k.next])
		k.ring[k.next] = id
		k.next = (k.next + 1) % len(k.ring)
	}
	k.lines[id] = l
}

type request struct {
	line  Line
	first Line // the claim stored, once done
	err   error
	done  chan struct{}
}

// NewStore starts a store writing to coll. Close stops it.
func NewStore(coll *mongo.Collection, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{coll: coll, cfg: cfg, known: newKnown(cfg.Remember), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go s.run()
	return s, nil
}

// Check claims l. It returns a *Conflict when another copy of the line,
// with other content, was claimed first; nil when l is the first copy or
// one with the same content. An error (marked unavailable) means the
// claim could not be read or written.
func (s *Store) Check(ctx context.Context, l Line) (*Conflict, error) {
	req := &request{line: l, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, failure.Unavailable(errors.New("line claims: the store is closed"))
	}
	if first, ok := s.known.lines[l.ID()]; ok {
		s.mu.Unlock()
		return compare(first, l), nil
	}
	s.queue = append(s.queue, req)
	select { // under mu, so Close cannot close wake in between
	case s.wake <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	select {
	case <-req.done:
	case <-ctx.Done():
		return nil, failure.Unavailable(fmt.Errorf("claim %s: %w", l.describe(), ctx.Err()))
	}
	if req.err != nil {
		return nil, failure.Unavailable(fmt.Errorf("claim %s: %w", l.describe(), req.err))
	}
	return compare(req.first, l), nil
}

// compare says whether l is a conflict with the first copy of its line.
func compare(first, l Line) *Conflict {
	if first.Fingerprint != l.Fingerprint {
		return &Conflict{First: first, Copy: l}
	}
	return nil
}

// Close finishes the claims queued and stops the store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.wake)
	s.mu.Unlock()
	<-s.stopped
	return nil
}

func (s *Store) run() {
	defer close(s.stopped)
	for {
		s.mu.Lock()
		n := min(len(s.queue), s.cfg.MaxBatch)
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		s.mu.Unlock()
		if n == 0 {
			if _, ok := <-s.wake; !ok {
				s.mu.Lock()
				empty := len(s.queue) == 0
				s.mu.Unlock()
				if empty {
					return
				}
			}
			continue
		}
		s.write(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

type doc struct {
	ID          string    `bson:"_id"`
	OrderID     int64     `bson:"order_id"`
	Line        int       `bson:"line"`
	Open        bool      `bson:"open,omitempty"`
	Fingerprint string    `bson:"fingerprint"`
	Topic       string    `bson:"topic"`
	Partition   int32     `bson:"partition"`
	Offset      int64     `bson:"offset"`
	Time        time.Time `bson:"time"`
}

func (d doc) line() Line {
	return Line{OrderID: d.OrderID, Ident: d.Line, Open: d.Open, Fingerprint: d.Fingerprint,
		Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
}

// write inserts the batch's claims, the first copy of each line in it; for
// the lines claimed before, it reads the claims stored, Readers at a time.
// A claim that cannot be read fails its own requests only, so a replay of
// lines claimed before always makes progress.
func (s *Store) write(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	byID := map[string][]*request{}
	var ids []string
	var docs []any
	now := time.Now().UTC()
	for _, r := range batch {
		id := r.line.ID()
		if _, seen := byID[id]; !seen {
			ids = append(ids, id)
			l := r.line
			docs = append(docs, doc{ID: id, OrderID: l.OrderID, Line: l.Ident, Open: l.Open, Fingerprint: l.Fingerprint,
				Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Time: now})
		}
		byID[id] = append(byID[id], r)
	}
	_, err := s.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	dups, ok := mongoerr.DuplicateIndexes(err)
	if err != nil && !ok {
		s.cfg.Logger.Warn("line claims: write failed; their messages will be redelivered", "claims", len(docs), "error", err)
		for _, r := range batch {
			r.err = fmt.Errorf("insert %d claims: %w", len(docs), err)
		}
		return
	}
	stored := make([]Line, len(ids))
	errs := make([]error, len(ids))
	for i, id := range ids {
		stored[i] = byID[id][0].line
	}
	readers := make(chan struct{}, s.cfg.Readers)
	var wg sync.WaitGroup
	for _, i := range dups {
		readers <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-readers; wg.Done() }()
			var d doc
			if err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: ids[i]}}).Decode(&d); err != nil {
				errs[i] = fmt.Errorf("read claim %s: %w", ids[i], err)
				return
			}
			stored[i] = d.line()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for i, id := range ids {
		if errs[i] == nil {
			s.known.add(id, stored[i])
		}
		for _, r := range byID[id] {
			r.first, r.err = stored[i], errs[i]
		}
	}
	s.mu.Unlock()
}
