package metastore

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/internal/mongoerr"
)

// Store reads and writes the metadata collections of one database.
type Store struct {
	db *mongo.Database
}

// NewStore returns a store over db.
func NewStore(db *mongo.Database) *Store { return &Store{db: db} }

// EnsureIndexes creates the unique index on each collection's natural key, so
// that a key cannot be loaded twice and a real MongoDB finds keys fast.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for coll, key := range map[string]string{
		FraudIPCollection:  "ip_address",
		LocationCollection: "location_id",
		ProductCollection:  "product_id",
	} {
		_, err := s.db.Collection(coll).Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: key, Value: 1}},
			Options: options.Index().SetUnique(true),
		})
		if err != nil {
			return fmt.Errorf("create unique index on %s.%s: %w", coll, key, err)
		}
	}
	return nil
}

// ApplyResult counts what Apply did per collection.
type ApplyResult map[string]*ApplyCounts

// String says what a load did, one collection after the other.
func (r ApplyResult) String() string {
	var parts []string
	for _, coll := range []string{FraudIPCollection, LocationCollection, ProductCollection} {
		if c := r[coll]; c != nil {
			parts = append(parts, fmt.Sprintf("%s %d new, %d updated, %d unchanged", coll, c.Inserted, c.Updated, c.Unchanged))
		}
	}
	return strings.Join(parts, "; ")
}

// LoadSample loads the bundled sample metadata into db, with its indexes:
// what the demo, the bench and the tests start from.
func LoadSample(ctx context.Context, db *mongo.Database) (ApplyResult, error) {
	store := NewStore(db)
	if err := store.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	ds, err := SampleDataset()
	if err != nil {
		return nil, err
	}
	res, err := store.Apply(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("load sample metadata: %w", err)
	}
	return res, nil
}

// ApplyCounts counts the documents of one collection.
type ApplyCounts struct {
	Inserted, Updated, Unchanged int
}

// Apply writes a dataset, then raises the metadata version so that running
// routers re-read it at once (see VersionCollection). It is idempotent: a
// document already stored with the same values is left alone, a changed one
// is replaced, a new one inserted.
// Reading the existing documents first keeps the write path insert-only in
// the common case, which matters on servers where updates are slow.
func (s *Store) Apply(ctx context.Context, ds Dataset) (ApplyResult, error) {
	res := ApplyResult{}
	if len(ds.FraudIPs) > 0 {
		docs := make([]keyedDoc, len(ds.FraudIPs))
		for i, r := range ds.FraudIPs {
			docs[i] = keyedDoc{key: r.Value.IPAddress, doc: bson.D{{Key: "_id", Value: r.Value.IPAddress}, {Key: "ip_address", Value: r.Value.IPAddress}}}
		}
		c, err := s.apply(ctx, FraudIPCollection, "ip_address", docs)
		if err != nil {
			return res, err
		}
		res[FraudIPCollection] = c
	}
	if len(ds.Locations) > 0 {
		docs := make([]keyedDoc, len(ds.Locations))
		for i, r := range ds.Locations {
			l := r.Value
			doc := bson.D{{Key: "_id", Value: l.LocationID}, {Key: "location_id", Value: l.LocationID}, {Key: "name", Value: l.Name}}
			docs[i] = keyedDoc{key: l.LocationID, doc: append(doc, l.Extra...)}
		}
		c, err := s.apply(ctx, LocationCollection, "location_id", docs)
		if err != nil {
			return res, err
		}
		res[LocationCollection] = c
	}
	if len(ds.Products) > 0 {
		docs := make([]keyedDoc, len(ds.Products))
		for i, r := range ds.Products {
			p := r.Value
			docs[i] = keyedDoc{key: p.ProductID, doc: bson.D{
				{Key: "_id", Value: p.ProductID}, {Key: "product_id", Value: p.ProductID},
				{Key: "product_name", Value: p.ProductName}, {Key: "route_id", Value: int64(p.RouteID)},
				{Key: "category", Value: p.Category},
			}}
		}
		c, err := s.apply(ctx, ProductCollection, "product_id", docs)
		if err != nil {
			return res, err
		}
		res[ProductCollection] = c
	}
	// Even a load that changed nothing announces itself: it is how a user
	// asks running routers to read what was edited by hand.
	if err := s.BumpVersion(ctx); err != nil {
		return res, err
	}
	return res, nil
}

type keyedDoc struct {
	key any // string or int64
	doc bson.D
}

func (s *Store) apply(ctx context.Context, name, keyField string, docs []keyedDoc) (*ApplyCounts, error) {
	coll := s.db.Collection(name)
	existing, err := s.existing(ctx, coll, keyField)
	if err != nil {
		return nil, err
	}
	counts := &ApplyCounts{}
	var inserts []any
	for _, d := range docs {
		old, found := existing[d.key]
		switch {
		case !found:
			inserts = append(inserts, d.doc)
		case sameContent(old, d.doc):
			counts.Unchanged++
		default:
			// The stored document may have its own _id (mongoimport gives
			// ObjectIDs), which a replacement must not change.
			repl := withoutID(d.doc)
			if _, err := coll.ReplaceOne(ctx, bson.D{{Key: keyField, Value: d.key}}, repl); err != nil {
				return nil, fmt.Errorf("update %s %v in %s: %w", keyField, d.key, name, err)
			}
			counts.Updated++
		}
	}
	for len(inserts) > 0 {
		n := min(len(inserts), 1000)
		_, err := coll.InsertMany(ctx, inserts[:n], options.InsertMany().SetOrdered(false))
		if err != nil && !mongoerr.OnlyDuplicateKeys(err) {
			return nil, fmt.Errorf("insert into %s: %w", name, err)
		}
		counts.Inserted += n
		inserts = inserts[n:]
	}
	return counts, nil
}

// existing reads the stored documents of a collection keyed by their natural
// key, normalised to the types Apply writes.
func (s *Store) existing(ctx context.Context, coll *mongo.Collection, keyField string) (map[any]bson.D, error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	out := map[any]bson.D{}
	for cur.Next(ctx) {
		var doc bson.D
		if err := cur.Decode(&doc); err != nil {
			return nil, fmt.Errorf("read %s: %w", coll.Name(), err)
		}
		fields := fieldMap(doc)
		var key any
		if keyField == "ip_address" {
			ip, err := stringField(fields, keyField)
			if err != nil {
				continue // not ours to judge here; the snapshot reports it
			}
			key = ip
		} else {
			id, err := intField(fields, keyField)
			if err != nil {
				continue
			}
			key = id
		}
		out[key] = doc
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	return out, nil
}

// sameContent compares a stored document with one about to be written,
// ignoring _id and the integer width of numbers.
func sameContent(stored, want bson.D) bool {
	a, b := withoutID(stored), withoutID(want)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !reflect.DeepEqual(normalise(a[i].Value), normalise(b[i].Value)) {
			return false
		}
	}
	return true
}

func normalise(v any) any {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case bson.D:
		out := make(bson.D, len(n))
		for i, e := range n {
			out[i] = bson.E{Key: e.Key, Value: normalise(e.Value)}
		}
		return out
	case bson.A:
		out := make(bson.A, len(n))
		for i, e := range n {
			out[i] = normalise(e)
		}
		return out
	}
	return v
}

func withoutID(d bson.D) bson.D {
	out := make(bson.D, 0, len(d))
	for _, e := range d {
		if e.Key != "_id" {
			out = append(out, e)
		}
	}
	return out
}
