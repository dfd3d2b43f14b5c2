// Package httpapi is orderflow's HTTP listener: Prometheus metrics, health
// and readiness for orchestrators, the read-only order status API and the
// dashboard page. It binds to loopback unless configured otherwise.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server.
type Config struct {
	// Listen is the address, for example 127.0.0.1:8080.
	Listen string
	// Gatherer is served at /metrics.
	Gatherer prometheus.Gatherer
	// Ready checks what /readyz reports: nil when the process can do its
	// work (broker and MongoDB reachable, router running).
	Ready func(ctx context.Context) error
	// Orders backs the order status API and the dashboard; nil disables
	// them.
	Orders OrderSource
	// Status reads current statuses for /orders/{id}, /summary and /stuck;
	// nil derives them from Orders.
	Status StatusSource
	// StuckAfter is the default age after which /stuck lists an order that
	// is not final.
	StuckAfter time.Duration
	// MaxConcurrent bounds the API requests served at once (default 32);
	// RequestTimeout bounds each (default 5s). See limited.
	MaxConcurrent  int
	RequestTimeout time.Duration
	// Held, when set, lists the lines held by redeliver_forever handlers,
	// shown by /stuck beside the orders.
	Held func() any
	// Aggregates reads the aggregations for /aggregates; nil disables it.
	Aggregates AggregateSource
	Logger     *slog.Logger
}

// Server serves the endpoints.
type Server struct {
	cfg  Config
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	snap snapshot
	// history is sampled in the background while the server runs.
	history     history
	stopSamples context.CancelFunc
	sampled     chan struct{}
	slots       chan struct{} // one per API request in progress
}

// Start listens and serves in the background until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = 5 * time.Minute
	}
	cfg.setLimitDefaults()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln, done: make(chan struct{}), sampled: make(chan struct{}), slots: make(chan struct{}, cfg.MaxConcurrent)}
	if s.cfg.Status == nil && s.cfg.Orders != nil {
		s.cfg.Status = foldedStatus{s}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSamples = cancel
	go func() {
		defer close(s.sampled)
		if cfg.Orders != nil {
			s.sampleStats(ctx)
		}
	}()
	// IdleTimeout closes keep-alive connections nobody uses, so idle
	// clients cannot hold the listener's sockets.
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http listener stopped", "error", err)
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL of the server.
func (s *Server) URL() string { return "http://" + s.Addr() + "/" }

// Close stops the server, letting requests in progress finish within ctx.
func (s *Server) Close(ctx context.Context) error {
	s.stopSamples()
	<-s.sampled
	err := s.srv.Shutdown(ctx)
	<-s.done
	if err != nil {
		return fmt.Errorf("stop http listener: %w", err)
	}
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if s.cfg.Orders != nil {
		s.apiRoutes(mux)
	}
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}
