// Package metrics defines orderflow's Prometheus metrics, in one registry
// that the HTTP listener serves at /metrics next to Watermill's router
// metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderflow/orderflow/status"
)

// Metrics holds the collectors of one process.
type Metrics struct {
	Registry *prometheus.Registry

	// Lines counts status records written, by handler and status: lines
	// passing each stage, rejected and failed (poisoned) ones.
	Lines *prometheus.CounterVec
	// Rejected and Poisoned count lines by handler; Poisoned counts every
	// message sent to the poison queue (see OnPoison), keyed or not.
	Rejected *prometheus.CounterVec
	Poisoned *prometheus.CounterVec
	// Held counts lines of redeliver_forever handlers that kept failing
	// past the report threshold, by handler.
	Held *prometheus.CounterVec
	// StatusBatch and StatusWrite describe the status writes.
	StatusBatch       prometheus.Histogram
	StatusWrite       prometheus.Histogram
	StatusWriteErrors prometheus.Counter
	// MongoCommands counts commands by name, from the driver's monitor.
	MongoCommands *prometheus.CounterVec
	// Deliveries counts partner deliveries by partner and result.
	Deliveries *prometheus.CounterVec
	// Latency is the time from a line's generation to each stage.
	Latency *prometheus.HistogramVec
	// AggregateLines counts the lines each aggregation acknowledged
	// (counted, or known for copies), AggregateFlush times its state
	// writes and AggregateFlushErrors counts those that failed.
	AggregateLines       *prometheus.CounterVec
	AggregateFlush       *prometheus.HistogramVec
	AggregateFlushErrors *prometheus.CounterVec
}

// New registers the metrics in a new registry, with Go and process metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		Lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "lines_total",
			Help: "Order lines recorded, by handler and status (a redelivered line counts again).",
		}, []string{"handler", "status"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "rejected_lines_total", Help: "Lines rejected, by handler.",
		}, []string{"handler"}),
		Poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "poisoned_lines_total", Help: "Lines sent to the poison queue, by handler.",
		}, []string{"handler"}),
		Held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "held_lines_total",
			Help: "Lines of redeliver_forever handlers reported held: they keep failing and are redelivered without end.",
		}, []string{"handler"}),
		StatusBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orderflow", Name: "status_write_batch_records", Help: "Records per status write.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		StatusWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orderflow", Name: "status_write_seconds", Help: "Duration of status writes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		StatusWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "status_write_errors_total", Help: "Status writes that failed (their messages are redelivered).",
		}),
		MongoCommands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "mongodb_commands_total", Help: "MongoDB commands sent, by command.",
		}, []string{"command"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "partner_deliveries_total", Help: "Lines delivered to partners, by partner.",
		}, []string{"partner"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orderflow", Name: "line_latency_seconds",
			Help:    "Time from a line's generation (its order time) to its status record, by status.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"status"}),
		AggregateLines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "aggregate_lines_total", Help: "Lines an aggregation acknowledged once its state was written, by aggregation.",
		}, []string{"aggregate"}),
		AggregateFlush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orderflow", Name: "aggregate_flush_seconds", Help: "Duration of an aggregation's state writes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"aggregate"}),
		AggregateFlushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orderflow", Name: "aggregate_flush_errors_total", Help: "State writes of an aggregation that failed (their lines are redelivered).",
		}, []string{"aggregate"}),
	}
	reg.MustRegister(m.Lines, m.Rejected, m.Poisoned, m.Held, m.StatusBatch, m.StatusWrite, m.StatusWriteErrors,
		m.MongoCommands, m.Deliveries, m.Latency, m.AggregateLines, m.AggregateFlush, m.AggregateFlushErrors)
	return m
}

// OnPoison counts a poisoned message; it fits
// middleware.PoisonQueueConfig.OnPoison.
func (m *Metrics) OnPoison(handler string) { m.Poisoned.WithLabelValues(handler).Inc() }

// OnAggregateFlush records a flush of an aggregation; it fits
// aggregate.Config.OnFlush.
func (m *Metrics) OnAggregateFlush(name string, lines int, took time.Duration, err error) {
	m.AggregateFlush.WithLabelValues(name).Observe(took.Seconds())
	if err != nil {
		m.AggregateFlushErrors.WithLabelValues(name).Inc()
		return
	}
	m.AggregateLines.WithLabelValues(name).Add(float64(lines))
}

// OnHeld counts a held line; it fits middleware.HeldConfig.OnHeld.
func (m *Metrics) OnHeld(handler string) { m.Held.WithLabelValues(handler).Inc() }

// OnStatusWrite records a status write; it fits status.RecorderConfig.OnWrite.
func (m *Metrics) OnStatusWrite(recs []status.Record, took time.Duration, err error) {
	m.StatusBatch.Observe(float64(len(recs)))
	m.StatusWrite.Observe(took.Seconds())
	if err != nil {
		m.StatusWriteErrors.Inc()
		return
	}
	now := time.Now()
	for _, r := range recs {
		m.Lines.WithLabelValues(r.Handler, string(r.Status)).Inc()
		switch r.Status {
		case status.Rejected:
			m.Rejected.WithLabelValues(r.Handler).Inc()
		case status.Delivered:
			m.Deliveries.WithLabelValues(r.Partner).Inc()
		}
		if !r.Generated.IsZero() {
			m.Latency.WithLabelValues(string(r.Status)).Observe(now.Sub(r.Generated).Seconds())
		}
	}
}
