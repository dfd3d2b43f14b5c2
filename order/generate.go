package order

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Catalog is what random orders are drawn from: the product and location ids
// of the metadata, and the fraud list for the share of orders that should be
// rejected.
type Catalog struct {
	ProductIDs  []int64
	LocationIDs []int64
	FraudIPs    []string
}

// Validate reports a catalog that cannot produce orders.
func (c Catalog) Validate() error {
	if len(c.ProductIDs) == 0 {
		return errors.New("no products in the metadata: run `orderflow metadata load` first")
	}
	if len(c.LocationIDs) == 0 {
		return errors.New("no locations in the metadata: run `orderflow metadata load` first")
	}
	return nil
}

// Generator draws random orders. It is not safe for concurrent use.
type Generator struct {
	catalog    Catalog
	fraudShare float64
	fraud      map[string]struct{}
	rng        *rand.Rand
	now        func() time.Time
}

// NewGenerator returns a generator over catalog. fraudShare is the share of
// orders, from 0 to 1, whose IP is taken from the fraud list. seed makes the
// sequence reproducible.
func NewGenerator(catalog Catalog, fraudShare float64, seed uint64) (*Generator, error) {
	if err := catalog.Validate(); err != nil {
		return nil, err
	}
	if fraudShare < 0 || fraudShare > 1 || math.IsNaN(fraudShare) {
		return nil, fmt.Errorf("fraud share %v is outside 0..1", fraudShare)
	}
	if fraudShare > 0 && len(catalog.FraudIPs) == 0 {
		return nil, errors.New("a fraud share is set but the fraud list is empty")
	}
	fraud := make(map[string]struct{}, len(catalog.FraudIPs))
	for _, ip := range catalog.FraudIPs {
		fraud[ip] = struct{}{}
	}
	return &Generator{
		catalog:    catalog,
		fraudShare: fraudShare,
		fraud:      fraud,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:        time.Now,
	}, nil
}

// Order returns a random order with the given id.
func (g *Generator) Order(id int64) Order {
	n := MinProducts + g.rng.IntN(MaxProducts-MinProducts+1)
	o := Order{
		ID:        id,
		Time:      FormatTime(g.now()),
		IPAddress: g.ip(id),
		Products:  make([]Product, n),
	}
	for i := range o.Products {
		o.Products[i] = Product{
			ProductID:      pick(g.rng, g.catalog.ProductIDs),
			OrderQty:       MinQty + g.rng.IntN(MaxQty-MinQty+1),
			FromLocation:   pick(g.rng, g.catalog.LocationIDs),
			ToLocation:     pick(g.rng, g.catalog.LocationIDs),
			UnitOfMeasures: MinUnitOfMeasures + g.rng.IntN(MaxUnitOfMeasures-MinUnitOfMeasures+1),
			UOMType:        uomTypes[g.rng.IntN(len(uomTypes))],
			// Whole tenths between the bounds, so the price has one decimal.
			ProductPrice: float64(100+g.rng.IntN(int((MaxPrice-MinPrice)*10)+1)) / 10,
		}
	}
	return o
}

// ip draws a fraud IP for the configured share of orders, and otherwise a
// public unicast IPv4 address that is not on the fraud list, so that only the
// intended orders are rejected.
func (g *Generator) ip(id int64) string {
	if FraudID(id, g.fraudShare) {
		return pick(g.rng, g.catalog.FraudIPs)
	}
	for {
		var b [4]byte
		b[0] = byte(1 + g.rng.IntN(223)) // 1..223: no 0/8, multicast or reserved
		b[1], b[2], b[3] = byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1+g.rng.IntN(254))
		if b[0] == 10 || b[0] == 127 {
			continue
		}
		s := netip.AddrFrom4(b).String()
		if _, bad := g.fraud[s]; !bad {
			return s
		}
	}
}

// FraudID reports whether the order with this id gets a fraud IP at the
// given share. The choice is spread evenly over ids rather than drawn at
// random, so any run of n consecutive ids holds n*share fraud orders,
// rounded down or up: a small demo always shows some rejections, and a run's
// rejections are the same whichever worker drew which id.
func FraudID(id int64, share float64) bool {
	if share <= 0 {
		return false
	}
	return math.Floor(float64(id)*share) != math.Floor(float64(id-1)*share)
}

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }
