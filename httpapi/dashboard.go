package httpapi

import (
	_ "embed"
	"net/http"
)

// dashboardHTML is the whole dashboard: one page, with its script and style
// inline and no outside resource, served from the binary.
//
//go:embed dashboard.html
var dashboardHTML []byte

func (s *Server) dashboard(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(dashboardHTML)
}
