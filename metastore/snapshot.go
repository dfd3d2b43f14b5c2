package metastore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/order"
)

// Snapshot is an immutable in-memory copy of the metadata collections.
type Snapshot struct {
	fraud     map[string]struct{}
	locations map[int64]string
	products  map[int64]Product
	// StartedAt is when the reads of this snapshot began: it holds every
	// change made before then. LoadedAt is when they ended.
	StartedAt, LoadedAt time.Time
	// Version is the metadata version read before the collections (see
	// VersionCollection).
	Version int64
	// Skipped counts stored documents that were unusable (a missing name, a
	// string id), with the first few problems, so they can be reported.
	Skipped  int
	Problems []string
}

// NewSnapshot builds a snapshot from values, for tests and tools.
func NewSnapshot(fraudIPs []string, locations []Location, products []Product) *Snapshot {
	s := &Snapshot{
		fraud:     make(map[string]struct{}, len(fraudIPs)),
		locations: make(map[int64]string, len(locations)),
		products:  make(map[int64]Product, len(products)),
		StartedAt: time.Now(),
	}
	s.LoadedAt = s.StartedAt
	for _, ip := range fraudIPs {
		if c, err := CanonicalIP(ip); err == nil {
			s.fraud[c] = struct{}{}
		}
	}
	for _, l := range locations {
		s.locations[l.LocationID] = l.Name
	}
	for _, p := range products {
		s.products[p.ProductID] = p
	}
	return s
}

// IsFraud reports whether ip is on the fraud list.
func (s *Snapshot) IsFraud(ip string) bool {
	_, ok := s.fraud[ip]
	return ok
}

// LocationName returns the name of a location.
func (s *Snapshot) LocationName(id int64) (string, bool) {
	n, ok := s.locations[id]
	return n, ok
}

// Product returns a product's metadata.
func (s *Snapshot) Product(id int64) (Product, bool) {
	p, ok := s.products[id]
	return p, ok
}

// Counts returns the number of fraud IPs, locations and products.
func (s *Snapshot) Counts() (fraudIPs, locations, products int) {
	return len(s.fraud), len(s.locations), len(s.products)
}

// Catalog returns what the order generator draws from, in a stable order.
func (s *Snapshot) Catalog() order.Catalog {
	var c order.Catalog
	for id := range s.products {
		c.ProductIDs = append(c.ProductIDs, id)
	}
	for id := range s.locations {
		c.LocationIDs = append(c.LocationIDs, id)
	}
	for ip := range s.fraud {
		c.FraudIPs = append(c.FraudIPs, ip)
	}
	slices.Sort(c.ProductIDs)
	slices.Sort(c.LocationIDs)
	slices.Sort(c.FraudIPs)
	return c
}

// Snapshot reads the three collections whole. They are small, and reading
// them at once costs three queries however many messages use them.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap := NewSnapshot(nil, nil, nil)
	// The version first: a load that lands during the reads raises it past
	// this one, and the next poll reads again.
	v, err := s.Version(ctx)
	if err != nil {
		return nil, err
	}
	snap.Version = v
	skip := func(coll string, err error) {
		snap.Skipped++
		if len(snap.Problems) < 5 {
			snap.Problems = append(snap.Problems, coll+": "+err.Error())
		}
	}
	err = eachDoc(ctx, s.db.Collection(FraudIPCollection), func(f map[string]any) {
		ip, err := stringField(f, "ip_address")
		if err == nil {
			ip, err = CanonicalIP(ip)
		}
		if err != nil {
			skip(FraudIPCollection, err)
			return
		}
		snap.fraud[ip] = struct{}{}
	})
	if err != nil {
		return nil, err
	}
	err = eachDoc(ctx, s.db.Collection(LocationCollection), func(f map[string]any) {
		id, err := intField(f, "location_id")
		var name string
		if err == nil {
			name, err = stringField(f, "name")
		}
		if err != nil {
			skip(LocationCollection, err)
			return
		}
		snap.locations[id] = name
	})
	if err != nil {
		return nil, err
	}
	err = eachDoc(ctx, s.db.Collection(ProductCollection), func(f map[string]any) {
		var p Product
		var route int64
		var err error
		if p.ProductID, err = intField(f, "product_id"); err == nil {
			if p.ProductName, err = stringField(f, "product_name"); err == nil {
				if route, err = intField(f, "route_id"); err == nil {
					p.RouteID = int(route)
					if c, ok := f["category"].(string); ok {
						p.Category = c
					}
					err = p.Validate()
				}
			}
		}
		if err != nil {
			skip(ProductCollection, err)
			return
		}
		snap.products[p.ProductID] = p
	})
	if err != nil {
		return nil, err
	}
	snap.LoadedAt = time.Now()
	return snap, nil
}

func eachDoc(ctx context.Context, coll *mongo.Collection, fn func(map[string]any)) error {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var doc bson.D
		if err := cur.Decode(&doc); err != nil {
			return fmt.Errorf("read %s: %w", coll.Name(), err)
		}
		fn(fieldMap(doc))
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	return nil
}
