package metastore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/internal/tcpproxy"
	"github.com/orderflow/orderflow/internal/testenv"
)

func TestApplyIsIdempotentAndUpdatesChanges(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	if err := store.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := SampleDataset()
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Apply(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	if res[ProductCollection].Inserted != 500 || res[FraudIPCollection].Inserted != 500 || res[LocationCollection].Inserted != 120 {
		t.Fatalf("first load %+v %+v %+v", *res[ProductCollection], *res[FraudIPCollection], *res[LocationCollection])
	}
	res, err = store.Apply(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	for coll, c := range res {
		if c.Inserted != 0 || c.Updated != 0 {
			t.Fatalf("second load of %s wrote: %+v", coll, *c)
		}
	}
	n, _ := db.Collection(ProductCollection).CountDocuments(ctx, bson.D{})
	if n != 500 {
		t.Fatalf("%d products after two loads", n)
	}

	changed, err := Parse("change.json", strings.NewReader(`{"product_id":1000,"product_name":"renamed","route_id":2,"category":"Toys"}
{"product_id":9999,"product_name":"new","route_id":1,"category":"Toys"}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err = store.Apply(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if c := res[ProductCollection]; c.Updated != 1 || c.Inserted != 1 {
		t.Fatalf("change load %+v", *c)
	}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := snap.Product(1000); !ok || p.ProductName != "renamed" || p.RouteID != 2 {
		t.Fatalf("product 1000 = %+v %v", p, ok)
	}
	f, l, p := snap.Counts()
	if f != 500 || l != 120 || p != 501 || snap.Skipped != 0 {
		t.Fatalf("snapshot counts %d %d %d skipped %d", f, l, p, snap.Skipped)
	}
	if name, ok := snap.LocationName(1); !ok || name == "" {
		t.Fatal("location 1 has no name")
	}
}

func TestSnapshotReadsForeignDocumentsAndSkipsBadOnes(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	// Documents as mongoimport of the original files leaves them: ObjectIDs,
	// int32 ids, doubles; plus one unusable document.
	_, err := db.Collection(ProductCollection).InsertMany(ctx, []any{
		bson.D{{Key: "product_id", Value: int32(1000)}, {Key: "product_name", Value: "a"}, {Key: "route_id", Value: 1.0}, {Key: "category", Value: "Grocery"}},
		bson.D{{Key: "product_id", Value: "oops"}, {Key: "product_name", Value: "b"}, {Key: "route_id", Value: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := NewStore(db).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := snap.Product(1000); !ok || p.RouteID != 1 {
		t.Fatalf("product = %+v %v", p, ok)
	}
	if snap.Skipped != 1 || !strings.Contains(snap.Problems[0], "product_id must be an integer") {
		t.Fatalf("skipped %d %v", snap.Skipped, snap.Problems)
	}
}

// runCache loads c and runs it until the test ends.
func runCache(t *testing.T, ctx context.Context, c *Cache) {
	t.Helper()
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestCacheMissWaitsForASnapshotNewerThanTheMiss(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	// No background refresh and no version poll: only misses refresh.
	cache, err := NewCache(store, CacheConfig{RefreshInterval: time.Hour, VersionPollInterval: time.Hour, MissRefreshInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, ctx, cache)
	// Added right after the first read, well inside the miss interval: the
	// old cache answered "unknown" from the empty snapshot here.
	ds, _ := Parse("p.json", strings.NewReader(`{"product_id":1234,"product_name":"late","route_id":3,"category":"Toys"}`))
	if _, err := store.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	p, ok, err := cache.Product(ctx, 1234)
	if err != nil || !ok || p.RouteID != 3 {
		t.Fatalf("product loaded before the miss: %+v %v %v", p, ok, err)
	}
	// Concurrent misses share reads: at most one per interval.
	reads := cache.reads.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := cache.LocationName(ctx, 99); ok || err != nil {
				t.Errorf("unknown location: %v %v", ok, err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if n := cache.reads.Load() - reads; n < 1 || n > 1+int64(took/(300*time.Millisecond)) {
		t.Fatalf("20 concurrent misses made %d reads in %v", n, took)
	}
}

func TestCacheWaitsOutTheGraceForLateReferenceData(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	const grace = 3 * time.Second
	cache, err := NewCache(store, CacheConfig{RefreshInterval: time.Hour, VersionPollInterval: 50 * time.Millisecond,
		MissRefreshInterval: 100 * time.Millisecond, UnknownReferenceGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, ctx, cache)
	found := make(chan error, 1)
	go func() {
		_, ok, err := cache.LocationName(ctx, 7)
		if err == nil && !ok {
			err = errors.New("location 7 not found")
		}
		found <- err
	}()
	time.Sleep(500 * time.Millisecond)
	ds, _ := Parse("l.json", strings.NewReader(`{"location_id":7,"name":"late"}`))
	if _, err := store.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	select {
	case err := <-found:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(loaded); d > time.Second {
			t.Fatalf("the waiting lookup saw the load after %v", d)
		}
	case <-time.After(grace):
		t.Fatal("a lookup waiting within its grace did not see the load")
	}
	// An id that never arrives is unknown once its grace is over, not before.
	start := time.Now()
	if _, ok, err := cache.LocationName(ctx, 8); ok || err != nil {
		t.Fatalf("location 8: %v %v", ok, err)
	}
	if d := time.Since(start); d < grace || d > grace+2*time.Second {
		t.Fatalf("unknown after %v, grace %v", d, grace)
	}
	// The grace runs from the id's first miss: a redelivered line does not
	// wait it out again.
	start = time.Now()
	if _, ok, err := cache.LocationName(ctx, 8); ok || err != nil {
		t.Fatalf("location 8 again: %v %v", ok, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a second lookup of the same unknown id waited %v", d)
	}
}

func TestCacheAppliesAMetadataLoadWithinThePollInterval(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	cache, err := NewCache(store, CacheConfig{RefreshInterval: time.Hour, VersionPollInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCache(t, ctx, cache)
	if err := cache.Ready(); err == nil || !strings.Contains(err.Error(), "fraud_ip") {
		t.Fatalf("empty metadata ready: %v", err)
	}
	ds, err := SampleDataset()
	if err != nil {
		t.Fatal(err)
	}
	ds.FraudIPs = append(ds.FraudIPs, Record[FraudIP]{Value: FraudIP{IPAddress: "203.0.113.9"}})
	if _, err := store.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	for !cache.IsFraud("203.0.113.9") {
		if time.Since(loaded) > time.Second {
			t.Fatal("a new fraud IP was not applied within 1 s of the load")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("new fraud IP applied %v after the load returned", time.Since(loaded))
	if err := cache.Ready(); err != nil {
		t.Fatalf("loaded metadata not ready: %v", err)
	}
}

func TestCacheKeepsSnapshotWhenMongoIsGone(t *testing.T) {
	m := testenv.StartMongo(t, testenv.TempDir(t))
	proxy, err := tcpproxy.Start(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	db := testenv.DatabaseAt(t, "mongodb://"+proxy.Addr()+"/", "cache_outage")
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	ds, _ := Parse("p.json", strings.NewReader(`{"product_id":1,"product_name":"p","route_id":1,"category":"c"}`))
	if _, err := store.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	cache, _ := NewCache(store, CacheConfig{MissRefreshInterval: time.Millisecond, UnknownReferenceGrace: time.Minute})
	runCache(t, ctx, cache)
	proxy.Cut()
	if _, ok, err := cache.Product(ctx, 1); !ok || err != nil {
		t.Fatal("cached product lost while mongo is down")
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, ok, err := cache.Product(short, 2)
	if ok || !failure.IsUnavailable(err) || short.Err() != nil {
		t.Fatalf("a miss while mongo is down must report the failed refresh as unavailable, got ok=%v err=%v", ok, err)
	}
	proxy.Restore()
}

func TestSequenceBlocksAreDisjoint(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	var mu sync.Mutex
	firsts := map[int64]bool{}
	var wg sync.WaitGroup
	// Each goroutine is a separate generator with its own Sequence.
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := NewSequence(db)
			for range 3 {
				first, last, err := seq.Reserve(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if last-first+1 != IDBlockSize || (first-1)%IDBlockSize != 0 {
					t.Errorf("block %d..%d", first, last)
				}
				mu.Lock()
				if firsts[first] {
					t.Errorf("block starting at %d handed out twice", first)
				}
				firsts[first] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(firsts) != 24 {
		t.Fatalf("got %d distinct blocks, want 24", len(firsts))
	}
	// A new run continues after every block handed out.
	first, _, err := NewSequence(db).Reserve(ctx)
	if err != nil || first != 24*IDBlockSize+1 {
		t.Fatalf("next run starts at %d (%v), want %d", first, err, 24*IDBlockSize+1)
	}
}
