package httpapi

import (
	"context"
	"net/http"
	"time"
)

// limited bounds the API's reads so that they can never starve the
// pipeline: at most MaxConcurrent requests run at once, the rest are answered
// 503 with Retry-After at once rather than queued, and each request ends
// after RequestTimeout. Health, readiness and metrics are not limited.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "busy: %d requests in progress; retry in a second", cap(s.slots))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

func (c *Config) setLimitDefaults() {
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 32
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
}
