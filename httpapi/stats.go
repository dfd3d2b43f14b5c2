package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	// GroupLag is each consumer group's lag over all its partitions, read
	// from the broker, whichever process holds them.
	GroupLag map[string]float64 `json:"group_lag"`
	// Metadata is what this process's metadata snapshot holds.
	Metadata metadataStats `json:"metadata"`
	// History is this process's line counts over the last minutes, oldest
	// first, so that a dashboard opened now draws its rates at once.
	History []sample `json:"history"`
}

// metadataStats describes the metadata snapshot: when it was read, its
// version and the entries of each collection.
type metadataStats struct {
	LoadedAt *time.Time         `json:"loaded_at,omitempty"`
	Version  float64            `json:"version"`
	Entries  map[string]float64 `json:"entries"`
}

// sample is what this process had counted at a moment.
type sample struct {
	At    time.Time          `json:"at"`
	Lines map[string]float64 `json:"lines"` // status -> records, over all handlers
}

const (
	// sampleEvery and sampleWindow shape the history: a sample every two
	// seconds over the five minutes the dashboard's chart shows.
	sampleEvery  = 2 * time.Second
	sampleWindow = 5 * time.Minute
)

// history is a bounded list of samples, oldest first.
type history struct {
	mu      sync.Mutex
	samples []sample
}

func (h *history) add(st stats) {
	smp := sample{At: st.At, Lines: map[string]float64{}}
	for _, byStatus := range st.Lines {
		for status, n := range byStatus {
			smp.Lines[status] += n
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, smp)
	if drop := len(h.samples) - int(sampleWindow/sampleEvery) - 1; drop > 0 {
		h.samples = append(h.samples[:0], h.samples[drop:]...)
	}
}

func (h *history) list() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sample{}, h.samples...)
}

// sampleStats records this process's counts every sampleEvery until ctx
// ends.
func (s *Server) sampleStats(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if st, err := s.gather(); err == nil {
			s.history.add(st)
		} else {
			s.cfg.Logger.Warn("sample metrics", "error", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) getStats(w http.ResponseWriter, _ *http.Request) {
	st, err := s.gather()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	st.History = s.history.list()
	writeJSON(w, http.StatusOK, st)
}

// gather reads this process's counts from its metrics.
func (s *Server) gather() (stats, error) {
	st := stats{At: time.Now(), Lines: map[string]map[string]float64{}, Metadata: metadataStats{Entries: map[string]float64{}}, GroupLag: map[string]float64{}}
	if s.cfg.Gatherer != nil {
		families, err := s.cfg.Gatherer.Gather()
		if err != nil {
			return st, fmt.Errorf("gather metrics: %w", err)
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
				case "orderflow_group_lag":
					st.GroupLag[label(m, "group")] = v
				case "orderflow_metadata_entries":
					st.Metadata.Entries[label(m, "collection")] = v
				case "orderflow_metadata_version":
					st.Metadata.Version = v
				case "orderflow_metadata_loaded_timestamp_seconds":
					t := time.Unix(0, int64(v*1e9))
					st.Metadata.LoadedAt = &t
				}
			}
		}
	}
	return st, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if strings.EqualFold(l.GetName(), name) {
			return l.GetValue()
		}
	}
	return ""
}
