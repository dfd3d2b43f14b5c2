package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/orderflow/orderflow/status"
)

// OrderSource reads orders with their per-line detail and history, and all
// orders for the lists: the folded records (status.Reader).
type OrderSource interface {
	Orders(ctx context.Context, ids ...int64) ([]*status.Order, error)
	All(ctx context.Context) ([]*status.Order, error)
}

// StatusSource reads current statuses in time that does not grow with the
// history (status.ViewReader): one order, the summary, the stuck orders.
type StatusSource interface {
	Orders(ctx context.Context, ids ...int64) ([]*status.Order, error)
	Summary(ctx context.Context) (status.Summary, error)
	Stuck(ctx context.Context, olderThan time.Duration, limit int) ([]*status.Order, int, error)
}

// foldedStatus answers StatusSource from the snapshot of every folded
// order, for a deployment without the view.
type foldedStatus struct{ s *Server }

func (f foldedStatus) Orders(ctx context.Context, ids ...int64) ([]*status.Order, error) {
	return f.s.cfg.Orders.Orders(ctx, ids...)
}

func (f foldedStatus) Summary(ctx context.Context) (status.Summary, error) {
	snap, err := f.s.orders(ctx)
	if err != nil {
		return status.Summary{}, err
	}
	return snap.summary, nil
}

func (f foldedStatus) Stuck(ctx context.Context, olderThan time.Duration, limit int) ([]*status.Order, int, error) {
	snap, err := f.s.orders(ctx)
	if err != nil {
		return nil, 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	var out []*status.Order
	total := 0
	for _, o := range snap.orders {
		if o.Final || o.FirstSeen.After(cutoff) {
			continue
		}
		total++
		if len(out) < limit {
			out = append(out, o)
		}
	}
	return out, total, nil
}

// minSnapshotTTL bounds how stale the lists and the summary may be.
// Deriving every order's status reads every status record, so a dashboard
// polling every second must not cause a scan every second: a snapshot also
// lives five times as long as it took to build.
const minSnapshotTTL = 2 * time.Second

// snapshot caches the derived statuses of all orders.
type snapshot struct {
	mu      sync.Mutex
	at      time.Time
	took    time.Duration
	orders  []*status.Order
	summary status.Summary
}

func (s *Server) orders(ctx context.Context) (*snapshot, error) {
	s.snap.mu.Lock()
	defer s.snap.mu.Unlock()
	if s.snap.orders != nil && time.Since(s.snap.at) < max(minSnapshotTTL, 5*s.snap.took) {
		return &s.snap, nil
	}
	start := time.Now()
	all, err := s.cfg.Orders.All(ctx)
	if err != nil {
		return nil, err
	}
	s.snap.orders, s.snap.summary, s.snap.at, s.snap.took = all, status.Summarize(all), time.Now(), time.Since(start)
	return &s.snap, nil
}

func (s *Server) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /orders/{id}", s.limited(s.getOrder))
	mux.HandleFunc("GET /orders", s.limited(s.listOrders))
	mux.HandleFunc("GET /summary", s.limited(s.getSummary))
	mux.HandleFunc("GET /stuck", s.limited(s.getStuck))
	mux.HandleFunc("GET /stats", s.limited(s.getStats))
	if s.cfg.Aggregates != nil {
		mux.HandleFunc("GET /aggregates", s.limited(s.listAggregates))
		mux.HandleFunc("GET /aggregates/{name}", s.limited(s.getAggregate))
		mux.HandleFunc("GET /aggregates/{name}/{key}", s.limited(s.getAggregateGroup))
	}
	mux.HandleFunc("GET /{$}", s.dashboard)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "order id %q is not a positive integer", r.PathValue("id"))
		return
	}
	// The current status is a few finds by _id; the per-line detail and
	// history read the order's records, which costs more.
	var orders []*status.Order
	if r.URL.Query().Get("history") != "" {
		orders, err = s.cfg.Orders.Orders(r.Context(), id)
	} else {
		orders, err = s.cfg.Status.Orders(r.Context(), id)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "read order status: %v", err)
		return
	}
	if len(orders) == 0 {
		writeError(w, http.StatusNotFound, "order %d is unknown", id)
		return
	}
	writeJSON(w, http.StatusOK, orders[0])
}

// orderPage is a page of orders, newest first.
type orderPage struct {
	Orders []*status.Order `json:"orders"`
	// Next is the value of `before` for the next page; 0 when this is the
	// last.
	Next  int64 `json:"next,omitempty"`
	Total int   `json:"total"`
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), 50, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: %v", err)
		return
	}
	before, err := intParam(q.Get("before"), 0, 0, 1<<62)
	if err != nil {
		writeError(w, http.StatusBadRequest, "before: %v", err)
		return
	}
	want := status.Status(q.Get("status"))
	if want != "" && !slices.Contains(status.All, want) {
		writeError(w, http.StatusBadRequest, "status %q is not one of %v", want, status.All)
		return
	}
	snap, err := s.orders(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "read order status: %v", err)
		return
	}
	page := orderPage{Orders: []*status.Order{}}
	for i := len(snap.orders) - 1; i >= 0; i-- { // orders are sorted by id
		o := snap.orders[i]
		if (want != "" && o.Status != want) || (before > 0 && o.ID >= int64(before)) {
			continue
		}
		page.Total++
		if len(page.Orders) < limit {
			page.Orders = append(page.Orders, o)
		} else if page.Next == 0 {
			page.Next = page.Orders[len(page.Orders)-1].ID
		}
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getSummary(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	sum, err := s.cfg.Status.Summary(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "read order status: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		status.Summary
		At time.Time `json:"at"`
	}{sum, at})
}

func (s *Server) getStuck(w http.ResponseWriter, r *http.Request) {
	olderThan := s.cfg.StuckAfter
	if v := r.URL.Query().Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "older_than %q is not a duration such as 30s or 5m", v)
			return
		}
		olderThan = d
	}
	limit, err := intParam(r.URL.Query().Get("limit"), 100, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: %v", err)
		return
	}
	stuck, total, err := s.cfg.Status.Stuck(r.Context(), olderThan, limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "read order status: %v", err)
		return
	}
	page := orderPage{Orders: append([]*status.Order{}, stuck...), Total: total}
	var held any = []any{}
	if s.cfg.Held != nil {
		held = s.cfg.Held()
	}
	writeJSON(w, http.StatusOK, struct {
		orderPage
		OlderThan string `json:"older_than"`
		// Held are the lines this process's redeliver_forever handlers
		// keep failing, with their reasons.
		Held any `json:"held_lines"`
	}{page, olderThan.String(), held})
}

func intParam(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errRange{v, lo, hi}
	}
	return n, nil
}

type errRange struct {
	v      string
	lo, hi int
}

func (e errRange) Error() string {
	return strconv.Quote(e.v) + " is not an integer from " + strconv.Itoa(e.lo) + " to " + strconv.Itoa(e.hi)
}
