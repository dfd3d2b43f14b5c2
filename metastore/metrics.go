package metastore

import "github.com/prometheus/client_golang/prometheus"

var (
	entriesDesc = prometheus.NewDesc("orderflow_metadata_entries",
		"Entries of each metadata collection in the router's snapshot.", []string{"collection"}, nil)
	loadedDesc = prometheus.NewDesc("orderflow_metadata_loaded_timestamp_seconds",
		"When the router's metadata snapshot was last read (Unix time).", nil, nil)
	versionDesc = prometheus.NewDesc("orderflow_metadata_version",
		"The metadata version the snapshot holds; `metadata load` raises it.", nil, nil)
)

// Collector exports what a Cache holds, for /metrics and the dashboard.
type Collector struct{ c *Cache }

// NewCollector returns a collector over c.
func NewCollector(c *Cache) Collector { return Collector{c} }

// Describe implements prometheus.Collector.
func (m Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- entriesDesc
	ch <- loadedDesc
	ch <- versionDesc
}

// Collect implements prometheus.Collector.
func (m Collector) Collect(ch chan<- prometheus.Metric) {
	snap := m.c.Snapshot()
	if snap == nil {
		return
	}
	f, l, p := snap.Counts()
	for coll, n := range map[string]int{FraudIPCollection: f, LocationCollection: l, ProductCollection: p} {
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(n), coll)
	}
	ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, float64(snap.LoadedAt.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(snap.Version))
}
