package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

// Record is one published result: its Kafka key (the group) and its JSON.
type Record struct {
	Key     string
	Payload []byte
}

// Emitter publishes results to a topic.
type Emitter interface {
	Emit(topic string, records []Record) error
}

// Config configures an Aggregator.
type Config struct {
	// Name is the handler's name.
	Name      string
	Aggregate config.AggregateConfig
	// Topic receives the results.
	Topic   string
	DB      *mongo.Database
	Emitter Emitter
	// WriteTimeout bounds each flush's writes.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// OnFlush, when set, is told of every flush: lines acknowledged, how
	// long it took, and its error.
	OnFlush func(name string, lines int, took time.Duration, err error)
}

// Aggregator runs one aggregation over the partitions its process owns.
//
// A line is acknowledged only once the state that counts it, and the ids of
// the lines counted, are in MongoDB, in one checkpoint document per
// partition: so a line redelivered after a crash or a rebalance is known
// for a copy, and a line whose checkpoint was lost is counted again from
// the state before it. A copy of a line (the same order and line, from an
// upstream redelivery) is known by its id for the allowed lateness.
type Aggregator struct {
	cfg   Config
	spec  *Spec
	store *Store
	log   *slog.Logger

	mu         sync.Mutex
	parts      map[int32]*partState
	pending    int
	kick       chan struct{}
	lastEmit   time.Time
	lastRollup time.Time
	// toRestore are the partitions waiting for restorer.
	toRestore   []*partState
	restoreKick chan struct{}
}

// partState is one partition of the aggregation in this process.
type partState struct {
	id int32
	// claim is the subscriber's hold on the partition: done when the
	// partition leaves this process, which then forgets its state (the
	// next owner restores it from MongoDB).
	claim     context.Context
	stopWatch func() bool
	ready     chan struct{} // closed once restored
	err       error         // of the restore
	state     *Partition
	chain     chain
	from, to  int64 // offsets counted since the last checkpoint
	counted   bool
	waiters   []chan error
	rolled    bool // the rollup changed since written
}

// ErrPartitionLeft fails the lines of a partition that left this process
// before their state was written; its next owner counts them.
var ErrPartitionLeft = errors.New("partition left this process before its state was written")

// New returns an Aggregator; Run runs it.
func New(cfg Config) *Aggregator {
	spec := SpecFrom(cfg.Name, cfg.Aggregate)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &Aggregator{cfg: cfg, spec: &spec, store: NewStore(cfg.DB, &spec, cfg.Aggregate),
		log: cfg.Logger.With("aggregate", cfg.Name), parts: map[int32]*partState{}, kick: make(chan struct{}, 1), restoreKick: make(chan struct{}, 1)}
}

// Add counts a line of a partition and returns once the state that counts
// it is written. claim is done when the partition leaves this process (nil:
// never). A copy of a counted line returns once the original is written. A
// line that cannot be counted gets a permanent error at once.
func (a *Aggregator) Add(ctx context.Context, partition int32, offset int64, claim context.Context, line order.Line) error {
	if claim == nil {
		claim = context.Background()
	}
	ps, err := a.partition(ctx, partition, claim)
	if err != nil {
		return err
	}
	a.mu.Lock()
	if a.parts[partition] != ps {
		a.mu.Unlock()
		return failure.Unavailable(fmt.Errorf("aggregate %s: %w", a.spec.Name, ErrPartitionLeft))
	}
	verdict, err := ps.state.Apply(line)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	if verdict == Counted {
		if !ps.counted {
			ps.from, ps.to, ps.counted = offset, offset, true
		}
		ps.from, ps.to = min(ps.from, offset), max(ps.to, offset)
		ps.rolled = true
	}
	done := make(chan error, 1)
	ps.waiters = append(ps.waiters, done)
	a.pending++
	if a.pending >= a.cfg.Aggregate.MaxPending {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Counted in the state all the same: the next checkpoint has it,
		// and the redelivered copy is known for one.
		return fmt.Errorf("wait for the state of %s to be written: %w", a.spec.Name, ctx.Err())
	}
}

// partition returns the partition's state, restoring it first.
func (a *Aggregator) partition(ctx context.Context, id int32, claim context.Context) (*partState, error) {
	a.mu.Lock()
	ps := a.parts[id]
	if ps != nil && ps.claim != claim {
		// Assigned again since: what this process knew may be stale.
		a.dropLocked(ps, ErrPartitionLeft)
		ps = nil
	}
	if ps == nil {
		ps = a.startRestoreLocked(id, claim)
	}
	a.mu.Unlock()
	select {
	case <-ps.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for %s partition %d to be restored: %w", a.spec.Name, id, ctx.Err())
	}
	if ps.err != nil {
		return nil, ps.err
	}
	return ps, nil
}

// startRestoreLocked registers a partition new to this process and asks
// Run's restorer for its state, which it restores with the other
// partitions asking at the same time (after a rebalance, every one at
// once), in one read.
func (a *Aggregator) startRestoreLocked(id int32, claim context.Context) *partState {
	ps := &partState{id: id, claim: claim, ready: make(chan struct{})}
	a.parts[id] = ps
	ps.stopWatch = context.AfterFunc(claim, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.parts[id] == ps {
			a.dropLocked(ps, ErrPartitionLeft)
		}
	})
	a.toRestore = append(a.toRestore, ps)
	select {
	case a.restoreKick <- struct{}{}:
	default:
	}
	return ps
}

// restorer restores the partitions asked for, a batch at a time, until ctx
// ends; then it fails what is still asked for.
func (a *Aggregator) restorer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for _, ps := range a.toRestore {
				ps.err = failure.Unavailable(fmt.Errorf("aggregate %s: shutting down", a.spec.Name))
				close(ps.ready)
			}
			a.toRestore = nil
			a.mu.Unlock()
			return
		case <-a.restoreKick:
		}
		// Let the other partitions of a rebalance ask too.
		select {
		case <-ctx.Done():
			continue
		case <-time.After(20 * time.Millisecond):
		}
		a.mu.Lock()
		batch := a.toRestore
		a.toRestore = nil
		a.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		ids := make([]int32, len(batch))
		for i, ps := range batch {
			ids[i] = ps.id
		}
		rctx, cancel := context.WithTimeout(ctx, 3*a.cfg.WriteTimeout)
		start := time.Now()
		got, err := a.store.restore(rctx, ids)
		cancel()
		a.mu.Lock()
		for _, ps := range batch {
			if err != nil {
				ps.err = failure.Unavailable(err)
				if a.parts[ps.id] == ps {
					delete(a.parts, ps.id)
				}
				ps.stopWatch()
			} else {
				ps.state, ps.chain = got[ps.id].state, got[ps.id].chain
			}
			close(ps.ready)
		}
		a.mu.Unlock()
		if err == nil {
			a.log.Info("partitions restored", "partitions", ids, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// pruner deletes the checkpoints no restore needs, every few seconds.
func (a *Aggregator) pruner(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, a.cfg.WriteTimeout)
		if _, err := a.store.prune(pctx); err != nil && ctx.Err() == nil {
			a.log.Warn("old checkpoints not pruned; they are tried again", "error", err)
		}
		cancel()
	}
}

// dropLocked forgets a partition, failing the lines waiting on it.
func (a *Aggregator) dropLocked(ps *partState, why error) {
	for _, w := range ps.waiters {
		w <- failure.Unavailable(fmt.Errorf("aggregate %s partition %d: %w", a.spec.Name, ps.id, why))
	}
	a.pending -= len(ps.waiters)
	ps.waiters = nil
	if ps.stopWatch != nil {
		ps.stopWatch()
	}
	delete(a.parts, ps.id)
}

// Run flushes the state every flush interval, or sooner when max_pending
// lines wait, until ctx ends; then it flushes once more and returns.
func (a *Aggregator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.restorer(ctx)
	}()
	go func() {
		defer wg.Done()
		a.pruner(ctx)
	}()
	defer wg.Wait()
	t := time.NewTicker(a.cfg.Aggregate.FlushInterval.Duration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush()
			return
		case <-t.C:
		case <-a.kick:
		}
		a.Flush()
	}
}

// flushed is what one partition gave to a flush.
type flushed struct {
	ps      *partState
	waiters []chan error
}

// Flush writes what changed: the results finished, closed and changed, the
// published records, then one checkpoint per partition with lines; then it
// releases the lines those checkpoints cover.
func (a *Aggregator) Flush() {
	now := time.Now()
	a.mu.Lock()
	emitDue := !a.spec.Complete && now.Sub(a.lastEmit) >= a.spec.EmitInterval
	rollupDue := now.Sub(a.lastRollup) >= time.Second
	var (
		cps                       []*pendingCheckpoint
		finished, closed, changed []Group
		parts                     []flushed
		rollups                   = map[int32]Rollup{}
		lines                     int
	)
	for _, ps := range a.parts {
		if ps.state == nil {
			continue // being restored
		}
		if len(ps.waiters) > 0 {
			ps.state.Advance()
			d := ps.state.Take()
			finished = append(finished, d.Finished...)
			closed = append(closed, d.Closed...)
			if ps.counted || len(d.Finished) > 0 || len(d.Closed) > 0 {
				ps.chain.seq++
				cps = append(cps, &pendingCheckpoint{partition: ps.id, chain: ps.chain, from: ps.from, to: ps.to,
					state: ps.state.Snapshot(), seen: d.Seen})
				ps.counted = false
			}
			parts = append(parts, flushed{ps: ps, waiters: ps.waiters})
			lines += len(ps.waiters)
			ps.waiters = nil
		}
		if emitDue {
			if c := ps.state.Changed(); len(c) > 0 {
				changed = append(changed, c...)
				if len(parts) == 0 || parts[len(parts)-1].ps != ps {
					parts = append(parts, flushed{ps: ps})
				}
			}
		}
		if rollupDue && ps.rolled {
			rollups[ps.id] = ps.state.Rollup()
			ps.rolled = false
		}
	}
	a.pending = 0
	if emitDue {
		a.lastEmit = now
	}
	if rollupDue {
		a.lastRollup = now
	}
	a.mu.Unlock()
	if len(parts) == 0 && len(rollups) == 0 {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.WriteTimeout)
	defer cancel()
	err := a.write(ctx, cps, finished, closed, changed)
	if err == nil && len(rollups) > 0 {
		if rerr := a.store.writeRollups(ctx, rollups); rerr != nil {
			// Derived from the state, not needed to count exactly: the
			// lines stand, and the rollups are written again next time.
			a.log.Warn("aggregate rollups not written; they are tried again", "error", rerr)
			a.mu.Lock()
			for _, ps := range a.parts {
				if _, ok := rollups[ps.id]; ok {
					ps.rolled = true
				}
			}
			a.mu.Unlock()
		}
	}
	if a.cfg.OnFlush != nil {
		a.cfg.OnFlush(a.spec.Name, lines, time.Since(now), err)
	}
	if err != nil {
		a.log.Warn("aggregate state not written; its lines will be redelivered and counted from the last checkpoint", "lines", lines, "error", err)
		err = failure.Unavailable(err)
		a.mu.Lock()
		for _, f := range parts {
			if a.parts[f.ps.id] == f.ps {
				a.dropLocked(f.ps, err)
			}
		}
		a.mu.Unlock()
	}
	for _, f := range parts {
		for _, w := range f.waiters {
			w <- err
		}
	}
}

// write writes a flush in the order that keeps it exact: results first
// (each once, or absolute), then the records, then the checkpoints that
// say the lines are counted. A crash between the steps recounts those
// lines from the checkpoint before, to the same results.
func (a *Aggregator) write(ctx context.Context, cps []*pendingCheckpoint, finished, closed, changed []Group) error {
	if err := a.store.writeResults(ctx, finished, closed, changed); err != nil {
		return err
	}
	if a.cfg.Emitter != nil {
		if err := a.emit(a.cfg.Topic, append(finished, changed...)); err != nil {
			return err
		}
		if w := a.cfg.Aggregate.Window; w != nil && w.Topic != "" {
			if err := a.emit(w.Topic, closed); err != nil {
				return err
			}
		}
	}
	if len(cps) == 0 {
		return nil
	}
	return a.store.writeCheckpoints(ctx, cps)
}

func (a *Aggregator) emit(topic string, groups []Group) error {
	if len(groups) == 0 || topic == "" {
		return nil
	}
	recs := make([]Record, len(groups))
	for i, g := range groups {
		payload, err := json.Marshal(RecordOf(a.spec, g))
		if err != nil {
			return fmt.Errorf("encode result of %s: %w", a.spec.Name, err)
		}
		recs[i] = Record{Key: g.Key, Payload: payload}
	}
	if err := a.cfg.Emitter.Emit(topic, recs); err != nil {
		return fmt.Errorf("publish %d results of %s to %s: %w", len(recs), a.spec.Name, topic, err)
	}
	return nil
}

// orderedRecord is a result as JSON, its fields in the document's order.
type orderedRecord []field

// MarshalJSON writes the fields in order.
func (r orderedRecord) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range r {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// RecordOf returns the published form of a group's result: the fields of
// its document, without _id.
func RecordOf(spec *Spec, g Group) json.Marshaler { return orderedRecord(resultFields(spec, g)) }
