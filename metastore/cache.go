package metastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/failure"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// RefreshInterval is how often the snapshot is re-read in the background.
	RefreshInterval time.Duration
	// MissRefreshInterval bounds the refreshes a lookup miss may trigger: a
	// product added a moment ago is found without waiting for the next
	// background refresh, yet a stream of unknown ids costs at most one query
	// per interval.
	MissRefreshInterval time.Duration
	Logger              *slog.Logger
}

func (c *CacheConfig) setDefaults() {
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 30 * time.Second
	}
	if c.MissRefreshInterval == 0 {
		c.MissRefreshInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c CacheConfig) Validate() error {
	if c.RefreshInterval < 0 || c.MissRefreshInterval < 0 {
		return errors.New("metadata refresh intervals must not be negative")
	}
	return nil
}

// Cache serves lookups from the latest snapshot of the metadata.
type Cache struct {
	store *Store
	cfg   CacheConfig
	cur   atomic.Pointer[Snapshot]

	refreshMu   sync.Mutex // one refresh at a time
	lastRefresh time.Time
}

// NewCache returns a cache over store. Call Load before the first lookup.
func NewCache(store *Store, cfg CacheConfig) (*Cache, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Cache{store: store, cfg: cfg}, nil
}

// Load reads the first snapshot.
func (c *Cache) Load(ctx context.Context) error {
	return c.refresh(ctx)
}

// Snapshot returns the current snapshot; nil before Load.
func (c *Cache) Snapshot() *Snapshot { return c.cur.Load() }

// Run refreshes the snapshot every RefreshInterval until ctx ends. A failed
// refresh keeps the previous snapshot: lookups go on while MongoDB is away.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("metadata refresh failed; keeping the previous snapshot", "error", err)
			}
		}
	}
}

func (c *Cache) refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return c.refreshLocked(ctx)
}

func (c *Cache) refreshLocked(ctx context.Context) error {
	snap, err := c.store.Snapshot(ctx)
	c.lastRefresh = time.Now()
	if err != nil {
		return fmt.Errorf("refresh metadata: %w", err)
	}
	if snap.Skipped > 0 {
		c.cfg.Logger.Warn("metadata documents skipped", "count", snap.Skipped, "examples", snap.Problems)
	}
	c.cur.Store(snap)
	return nil
}

// refreshForMiss re-reads the metadata after a lookup missed, unless that
// was done within MissRefreshInterval. Concurrent misses share one refresh.
func (c *Cache) refreshForMiss(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if time.Since(c.lastRefresh) < c.cfg.MissRefreshInterval {
		return nil
	}
	if err := c.refreshLocked(ctx); err != nil {
		return failure.Unavailable(err)
	}
	return nil
}

// IsFraud reports whether ip is on the fraud list. Not being on it is the
// normal case, so a miss does not trigger a refresh.
func (c *Cache) IsFraud(ip string) bool { return c.Snapshot().IsFraud(ip) }

// LocationName returns a location's name. On a miss it refreshes the snapshot
// once (see MissRefreshInterval) before answering false. The error is set
// only when that refresh failed.
func (c *Cache) LocationName(ctx context.Context, id int64) (string, bool, error) {
	if n, ok := c.Snapshot().LocationName(id); ok {
		return n, true, nil
	}
	if err := c.refreshForMiss(ctx); err != nil {
		return "", false, err
	}
	n, ok := c.Snapshot().LocationName(id)
	return n, ok, nil
}

// Product returns a product's metadata, refreshing once on a miss like
// LocationName.
func (c *Cache) Product(ctx context.Context, id int64) (Product, bool, error) {
	if p, ok := c.Snapshot().Product(id); ok {
		return p, true, nil
	}
	if err := c.refreshForMiss(ctx); err != nil {
		return Product{}, false, err
	}
	p, ok := c.Snapshot().Product(id)
	return p, ok, nil
}
