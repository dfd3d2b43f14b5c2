package app

import (
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/httpapi"
	"github.com/orderflow/orderflow/status"
)

// StatusReader returns the order status reader the configuration describes.
func StatusReader(cfg *config.Config, db *mongo.Database) *status.Reader {
	r := status.NewReader(db.Collection(status.Collection), cfg.DeliveryEnabled())
	r.OpenQuiet = cfg.Status.OpenOrderQuiet.Duration
	return r
}

// CurrentStatusReader returns the reader of current statuses: the
// order_status view when it is kept, whose reads do not grow with the
// history, or nil (the records then answer everything).
func CurrentStatusReader(cfg *config.Config, db *mongo.Database) *status.ViewReader {
	if !cfg.Status.OrderStatusEnabled() {
		return nil
	}
	return status.NewViewReader(db, cfg.DeliveryEnabled())
}

// currentStatusSource is CurrentStatusReader for the API: nil stays an
// untyped nil, so the API falls back to the records.
func currentStatusSource(cfg *config.Config, db *mongo.Database) httpapi.StatusSource {
	if r := CurrentStatusReader(cfg, db); r != nil {
		return r
	}
	return nil
}
