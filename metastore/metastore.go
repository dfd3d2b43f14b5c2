// Package metastore holds the pipeline's reference data in MongoDB: the fraud
// IP list, location names and product routes. It loads user files into the
// collections, and serves lookups to the handlers from an in-memory snapshot
// that is refreshed in the background, so a handler never queries MongoDB per
// message.
package metastore

import (
	"fmt"
	"net/netip"
)

// Collection names, as in the original pipeline.
const (
	FraudIPCollection  = "fraud_ip"
	LocationCollection = "location_details"
	ProductCollection  = "product_details"
)

// Product is a product_details document.
type Product struct {
	ProductID   int64  `json:"product_id" bson:"product_id"`
	ProductName string `json:"product_name" bson:"product_name"`
	RouteID     int    `json:"route_id" bson:"route_id"`
	Category    string `json:"category" bson:"category"`
}

// Validate checks the fields a product must have.
func (p Product) Validate() error {
	switch {
	case p.ProductID <= 0:
		return fmt.Errorf("product_id must be positive, got %d", p.ProductID)
	case p.ProductName == "":
		return fmt.Errorf("product_name is empty")
	case p.RouteID <= 0:
		return fmt.Errorf("route_id must be positive, got %d", p.RouteID)
	}
	return nil
}

// Location is the part of a location_details document the pipeline uses. The
// documents may carry more fields (coordinates, logistic ids); the loader keeps
// them as they are.
type Location struct {
	LocationID int64  `json:"location_id" bson:"location_id"`
	Name       string `json:"name" bson:"name"`
}

// Validate checks the fields a location must have.
func (l Location) Validate() error {
	switch {
	case l.LocationID <= 0:
		return fmt.Errorf("location_id must be positive, got %d", l.LocationID)
	case l.Name == "":
		return fmt.Errorf("name is empty")
	}
	return nil
}

// FraudIP is a fraud_ip document.
type FraudIP struct {
	IPAddress string `json:"ip_address" bson:"ip_address"`
}

// CanonicalIP returns the canonical form of an IP address, which is how the
// fraud list is stored and matched, or an error for anything that is not an
// address.
func CanonicalIP(s string) (string, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("ip_address %q is not an IP address", s)
	}
	return addr.Unmap().String(), nil
}
