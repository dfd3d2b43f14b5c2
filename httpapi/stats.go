package httpapi

import (
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// stats is what this process counted, from its metrics: cheap to read, for
// live rates. Counts include redeliveries; /summary has exact counts.
type stats struct {
	At         time.Time                     `json:"at"`
	Lines      map[string]map[string]float64 `json:"lines"` // handler -> status -> records
	Rejected   float64                       `json:"rejected"`
	Poisoned   float64                       `json:"poisoned"`
	Deliveries float64                       `json:"deliveries"`
	Lag        float64                       `json:"consumer_lag"`
}

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) {
	st := stats{At: time.Now(), Lines: map[string]map[string]float64{}}
	if s.cfg.Gatherer != nil {
		families, err := s.cfg.Gatherer.Gather()
		if err != nil {
			writeError(w, http.StatusInternalServerError, "gather metrics: %v", err)
			return
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				switch f.GetName() {
				case "orderflow_lines_total":
					h, stat := label(m, "handler"), label(m, "status")
					if st.Lines[h] == nil {
						st.Lines[h] = map[string]float64{}
					}
					st.Lines[h][stat] += v
				case "orderflow_rejected_lines_total":
					st.Rejected += v
				case "orderflow_poisoned_lines_total":
					st.Poisoned += v
				case "orderflow_partner_deliveries_total":
					st.Deliveries += v
				case "orderflow_consumer_lag":
					st.Lag += v
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if strings.EqualFold(l.GetName(), name) {
			return l.GetValue()
		}
	}
	return ""
}
