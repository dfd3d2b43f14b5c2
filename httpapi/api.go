package httpapi

import (
	"context"
	"net/http"

	"github.com/orderflow/orderflow/status"
)

// OrderSource reads order statuses for the API.
type OrderSource interface {
	Orders(ctx context.Context, ids ...int64) ([]*status.Order, error)
	All(ctx context.Context) ([]*status.Order, error)
}

func (s *Server) apiRoutes(mux *http.ServeMux) {}
