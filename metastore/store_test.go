package metastore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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

func TestCacheRefreshesOnMissAtMostOncePerInterval(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	store := NewStore(db)
	cache, err := NewCache(store, CacheConfig{RefreshInterval: time.Hour, MissRefreshInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := cache.Product(ctx, 1234); ok || err != nil {
		t.Fatalf("unknown product found: %v %v", ok, err)
	}
	ds, _ := Parse("p.json", strings.NewReader(`{"product_id":1234,"product_name":"late","route_id":3,"category":"Toys"}`))
	if _, err := store.Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	// A product added after the last refresh is found on the next miss.
	p, ok, err := cache.Product(ctx, 1234)
	if err != nil || !ok || p.RouteID != 3 {
		t.Fatalf("late product: %+v %v %v", p, ok, err)
	}
	// Misses within the interval share one refresh.
	before := cache.Snapshot()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cache.LocationName(ctx, 99)
		}()
	}
	wg.Wait()
	after := cache.Snapshot()
	if before != after && time.Since(before.LoadedAt) < 200*time.Millisecond {
		t.Fatal("misses inside the interval refreshed again")
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
	cache, _ := NewCache(store, CacheConfig{MissRefreshInterval: time.Millisecond})
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	if _, ok, err := cache.Product(ctx, 1); !ok || err != nil {
		t.Fatal("cached product lost while mongo is down")
	}
	time.Sleep(10 * time.Millisecond) // past MissRefreshInterval
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, ok, err := cache.Product(short, 2)
	if ok || err == nil {
		t.Fatalf("a miss while mongo is down must report the failed refresh, got ok=%v err=%v", ok, err)
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
