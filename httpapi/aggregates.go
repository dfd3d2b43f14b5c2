package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/orderflow/orderflow/aggregate"
)

// AggregateSource reads the aggregations; *aggregate.Reader is one.
type AggregateSource interface {
	Names() []string
	View(ctx context.Context, name string, top int) (aggregate.View, error)
	Group(ctx context.Context, name, key string) (map[string]any, error)
}

// listAggregates serves every aggregation's view: totals, the last
// minutes, and for a changes aggregation its top groups (?top=, 10).
func (s *Server) listAggregates(w http.ResponseWriter, r *http.Request) {
	top, err := intParam(r.URL.Query().Get("top"), 10, 0, 200)
	if err != nil {
		writeError(w, http.StatusBadRequest, "top: %v", err)
		return
	}
	out := struct {
		Aggregates []aggregate.View `json:"aggregates"`
	}{Aggregates: []aggregate.View{}}
	for _, name := range s.cfg.Aggregates.Names() {
		v, err := s.cfg.Aggregates.View(r.Context(), name, top)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "read aggregation %s: %v", name, err)
			return
		}
		out.Aggregates = append(out.Aggregates, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getAggregate(w http.ResponseWriter, r *http.Request) {
	top, err := intParam(r.URL.Query().Get("top"), 10, 0, 200)
	if err != nil {
		writeError(w, http.StatusBadRequest, "top: %v", err)
		return
	}
	v, err := s.cfg.Aggregates.View(r.Context(), r.PathValue("name"), top)
	switch {
	case errors.Is(err, aggregate.ErrUnknown):
		writeError(w, http.StatusNotFound, "%v", err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "read aggregation: %v", err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// getAggregateGroup serves one group's result: /aggregates/order_price/11100.
func (s *Server) getAggregateGroup(w http.ResponseWriter, r *http.Request) {
	name, key := r.PathValue("name"), r.PathValue("key")
	g, err := s.cfg.Aggregates.Group(r.Context(), name, key)
	switch {
	case errors.Is(err, aggregate.ErrUnknown):
		writeError(w, http.StatusNotFound, "%v", err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "read aggregation: %v", err)
	case g == nil:
		writeError(w, http.StatusNotFound, "%s has no result for %q (yet)", name, key)
	default:
		writeJSON(w, http.StatusOK, g)
	}
}
