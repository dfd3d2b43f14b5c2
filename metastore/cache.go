package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/failure"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// RefreshInterval is how often the snapshot is re-read in the background,
	// whatever the version says: it picks up edits made by hand.
	RefreshInterval time.Duration
	// MissRefreshInterval bounds the refreshes lookup misses may trigger: a
	// product added a moment ago is found without waiting for the next
	// background refresh, yet a stream of unknown ids costs at most one query
	// per interval.
	MissRefreshInterval time.Duration
	// VersionPollInterval is how often the metadata version is read (one
	// find by _id); a change is applied at once. It bounds how long a
	// `metadata load` takes to reach a running router, fraud list included.
	VersionPollInterval time.Duration
	// UnknownReferenceGrace is how long a lookup of an id that is still
	// missing keeps waiting for fresh snapshots, with backoff, before it
	// answers "unknown": reference data may arrive a little after the lines
	// that need it. Zero answers after one fresh snapshot.
	UnknownReferenceGrace time.Duration
	// Stopping, when closed, ends the lookups that wait: their lines are
	// retried after the restart, never failed.
	Stopping <-chan struct{}
	Logger   *slog.Logger
}

func (c *CacheConfig) setDefaults() {
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 30 * time.Second
	}
	if c.MissRefreshInterval == 0 {
		c.MissRefreshInterval = time.Second
	}
	if c.VersionPollInterval == 0 {
		c.VersionPollInterval = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c CacheConfig) Validate() error {
	if c.RefreshInterval < 0 || c.MissRefreshInterval < 0 || c.VersionPollInterval < 0 {
		return errors.New("metadata refresh and poll intervals must not be negative")
	}
	if c.UnknownReferenceGrace < 0 {
		return errors.New("metadata unknown_reference_grace must not be negative")
	}
	return nil
}

// maxMissBackoff caps the wait between two fresh snapshots while a lookup
// waits out its grace. A metadata load ends the wait earlier.
const maxMissBackoff = 5 * time.Second

// Cache serves lookups from the latest snapshot of the metadata. One
// goroutine, Run, does every read of MongoDB: a lookup that misses asks it
// for a snapshot started after the miss and waits, so a line is never judged
// on data older than itself, and concurrent misses share one read.
type Cache struct {
	store *Store
	cfg   CacheConfig
	cur   atomic.Pointer[Snapshot]

	wake chan struct{} // a miss wants a fresh snapshot; buffered 1
	done chan struct{} // closed when Run returns

	mu sync.Mutex
	// changed is closed and replaced whenever a refresh ends, well or not.
	changed chan struct{}
	// lastErr is the error of the last refresh, begun at lastAttempt.
	lastErr     error
	lastAttempt time.Time
	// missing remembers when an id was first missed, so that its grace runs
	// from then for every line that needs it, a redelivered line included.
	missing map[string]time.Time
	reads   atomic.Int64 // snapshots read, for tests
}

// maxMissing bounds the ids whose first miss is remembered.
const maxMissing = 10000

// NewCache returns a cache over store. Call Load before the first lookup, and
// keep Run running while lookups are made: it answers their misses.
func NewCache(store *Store, cfg CacheConfig) (*Cache, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cache{store: store, cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}), changed: make(chan struct{}), missing: map[string]time.Time{}}, nil
}

// Load reads the first snapshot.
func (c *Cache) Load(ctx context.Context) error {
	return c.refresh(ctx)
}

// Snapshot returns the current snapshot; nil before Load.
func (c *Cache) Snapshot() *Snapshot { return c.cur.Load() }

// Run keeps the snapshot fresh until ctx ends: it re-reads the metadata when
// its version moves (polled every VersionPollInterval), every
// RefreshInterval, and for lookup misses, at most once per
// MissRefreshInterval. A failed refresh keeps the previous snapshot: lookups
// go on while MongoDB is away.
func (c *Cache) Run(ctx context.Context) {
	defer close(c.done)
	poll := time.NewTicker(c.cfg.VersionPollInterval)
	defer poll.Stop()
	background := time.NewTicker(c.cfg.RefreshInterval)
	defer background.Stop()
	var missDue <-chan time.Time // set while a miss waits for its slot
	var lastWarn time.Time
	refresh := func(why string) {
		if err := c.refresh(ctx); err != nil && ctx.Err() == nil && time.Since(lastWarn) > 10*time.Second {
			lastWarn = time.Now()
			c.cfg.Logger.Warn("metadata refresh failed; keeping the previous snapshot", "trigger", why, "error", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-background.C:
			refresh("interval")
		case <-poll.C:
			v, err := c.store.Version(ctx)
			if err == nil && v != c.Snapshot().Version {
				refresh("metadata load")
			}
		case <-c.wake:
			if missDue != nil {
				continue // already scheduled
			}
			wait := time.Until(c.lastAttemptTime().Add(c.cfg.MissRefreshInterval))
			if wait <= 0 {
				refresh("lookup miss")
				continue
			}
			missDue = time.After(wait)
		case <-missDue:
			missDue = nil
			refresh("lookup miss")
		}
	}
}

func (c *Cache) lastAttemptTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAttempt
}

// refresh reads a snapshot and publishes it, waking the lookups that wait.
// Only Load and Run call it, so reads never overlap.
func (c *Cache) refresh(ctx context.Context) error {
	start := time.Now()
	c.reads.Add(1)
	snap, err := c.store.Snapshot(ctx)
	if err != nil {
		err = fmt.Errorf("refresh metadata: %w", err)
	} else {
		snap.StartedAt = start
		if snap.Skipped > 0 {
			c.cfg.Logger.Warn("metadata documents skipped", "count", snap.Skipped, "examples", snap.Problems)
		}
		c.cur.Store(snap)
	}
	c.mu.Lock()
	c.lastAttempt, c.lastErr = start, err
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return err
}

// fresh returns a snapshot begun after t, waiting for Run to read one. A
// refresh begun after t that failed is reported as the unavailability of
// MongoDB: the line is retried, never failed for it.
func (c *Cache) fresh(ctx context.Context, t time.Time) (*Snapshot, error) {
	for {
		c.mu.Lock()
		snap, changed := c.cur.Load(), c.changed
		failed := c.lastErr != nil && c.lastAttempt.After(t)
		err := c.lastErr
		c.mu.Unlock()
		if snap != nil && snap.StartedAt.After(t) {
			return snap, nil
		}
		if failed {
			return nil, failure.Unavailable(err)
		}
		select {
		case c.wake <- struct{}{}:
		default:
		}
		if err := c.wait(ctx, changed, nil); err != nil {
			return nil, err
		}
	}
}

// wait blocks until changed is closed or timer fires; it fails when the
// lookup must give up for now (ctx ended, the process stops, Run returned).
func (c *Cache) wait(ctx context.Context, changed <-chan struct{}, timer <-chan time.Time) error {
	select {
	case <-changed:
		return nil
	case <-timer:
		return nil
	case <-ctx.Done():
		return failure.Unavailable(fmt.Errorf("wait for metadata: %w", ctx.Err()))
	case <-c.cfg.Stopping:
		return failure.Unavailable(errors.New("wait for metadata: shutting down"))
	case <-c.done:
		return failure.Unavailable(errors.New("wait for metadata: the metadata cache stopped"))
	}
}

// lookup answers from the current snapshot, and on a miss from snapshots
// begun after the miss, for up to UnknownReferenceGrace; the error is set only
// when the lookup could not be answered (MongoDB away, shutting down).
func lookup[T any](ctx context.Context, c *Cache, key string, get func(*Snapshot) (T, bool)) (T, bool, error) {
	if v, ok := get(c.Snapshot()); ok {
		return v, true, nil
	}
	var zero T
	miss := time.Now()
	deadline := c.firstMiss(key, miss).Add(c.cfg.UnknownReferenceGrace)
	backoff := c.cfg.MissRefreshInterval
	for {
		snap, err := c.fresh(ctx, miss)
		if err != nil {
			return zero, false, err
		}
		if v, ok := get(snap); ok {
			c.mu.Lock()
			delete(c.missing, key)
			c.mu.Unlock()
			return v, true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return zero, false, nil
		}
		// Wait out the backoff, or less if a load brings new metadata.
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		timer := time.NewTimer(min(backoff, left))
		err = c.wait(ctx, changed, timer.C)
		timer.Stop()
		if err != nil {
			return zero, false, err
		}
		backoff = min(2*backoff, maxMissBackoff)
		miss = time.Now()
	}
}

// firstMiss returns when key was first missed within the last grace, noting
// now for a new one.
func (c *Cache) firstMiss(key string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.missing[key]; ok && now.Sub(t) < 2*c.cfg.UnknownReferenceGrace {
		return t
	}
	if len(c.missing) >= maxMissing {
		for k, t := range c.missing {
			if now.Sub(t) >= 2*c.cfg.UnknownReferenceGrace {
				delete(c.missing, k)
			}
		}
		if len(c.missing) >= maxMissing {
			return now // a flood of unknown ids: each gets its own grace
		}
	}
	c.missing[key] = now
	return now
}

// IsFraud reports whether ip is on the fraud list. Not being on it is the
// normal case, so a miss does not trigger a refresh: a change reaches the
// list through the version poll instead, within VersionPollInterval of the
// load.
func (c *Cache) IsFraud(ip string) bool { return c.Snapshot().IsFraud(ip) }

// LocationName returns a location's name. On a miss it waits for snapshots
// begun after the miss (see lookup) before answering false. The error is set
// only when no such snapshot could be read.
func (c *Cache) LocationName(ctx context.Context, id int64) (string, bool, error) {
	return lookup(ctx, c, "location "+strconv.FormatInt(id, 10), func(s *Snapshot) (string, bool) { return s.LocationName(id) })
}

// Product returns a product's metadata, waiting on a miss like LocationName.
func (c *Cache) Product(ctx context.Context, id int64) (Product, bool, error) {
	return lookup(ctx, c, "product "+strconv.FormatInt(id, 10), func(s *Snapshot) (Product, bool) { return s.Product(id) })
}

// Ready reports why the metadata cannot serve the pipeline yet: not read, or a
// collection empty, in which case every line would be rejected or failed.
func (c *Cache) Ready() error {
	snap := c.Snapshot()
	if snap == nil {
		return errors.New("metadata not read yet")
	}
	var empty []string
	f, l, p := snap.Counts()
	for _, e := range []struct {
		name string
		n    int
	}{{FraudIPCollection, f}, {LocationCollection, l}, {ProductCollection, p}} {
		if e.n == 0 {
			empty = append(empty, e.name)
		}
	}
	if len(empty) > 0 {
		return fmt.Errorf("metadata collections empty: %v; run `orderflow metadata load`", empty)
	}
	return nil
}
