package config

import "time"

// RouterConfig configures the Watermill router.
type RouterConfig struct {
	// CloseTimeout bounds a graceful shutdown.
	CloseTimeout Duration `yaml:"close_timeout"`
	// HeldDegradedAfter: /readyz reports degraded once a line of a
	// redeliver_forever handler has kept failing this long.
	HeldDegradedAfter Duration `yaml:"held_degraded_after"`
	// HeldReportAfter is the failures of one line, in such a handler,
	// after which it is logged at ERROR level, counted and listed by /stuck.
	HeldReportAfter int `yaml:"held_report_after"`
	// GroupStalledAfter: /readyz reports degraded once a consumer group of
	// the configuration has lag and its commits have not moved this long,
	// which is what a group looks like whose partitions sit with a dead
	// member. GroupHealthInterval is how often the broker is asked.
	GroupStalledAfter   Duration `yaml:"group_stalled_after"`
	GroupHealthInterval Duration `yaml:"group_health_interval"`
}

// HTTPConfig configures the metrics, health, API and dashboard listener.
type HTTPConfig struct {
	// Listen is the address; empty disables the listener. The default is
	// loopback only.
	Listen string `yaml:"listen"`
	// StuckAfter is the default age after which /stuck lists an order
	// that is not final.
	StuckAfter Duration `yaml:"stuck_after"`
	// MaxConcurrent bounds the API requests served at once; the rest get
	// 503 with Retry-After. RequestTimeout bounds each one.
	MaxConcurrent  int      `yaml:"max_concurrent"`
	RequestTimeout Duration `yaml:"request_timeout"`
	// MongoPool is the size of the API's own MongoDB connection pool,
	// apart from the pipeline's, so that reads never take the connections
	// status writes need.
	MongoPool int `yaml:"mongodb_pool"`
}

func (c *RouterConfig) setDefaults() {
	defDur(&c.CloseTimeout, 30*time.Second)
	defDur(&c.HeldDegradedAfter, 5*time.Minute)
	defInt(&c.HeldReportAfter, 10)
	defDur(&c.GroupStalledAfter, 2*time.Minute)
	defDur(&c.GroupHealthInterval, 5*time.Second)
}

// Validate checks the section, with keys relative to it.
func (c RouterConfig) Validate() error { return validateSection(c) }

func (c RouterConfig) validate(p *problems) {
	if c.HeldReportAfter < 1 {
		p.add("held_report_after", "must be at least 1")
	}
}

func (c *HTTPConfig) setDefaults() {
	defDur(&c.StuckAfter, 5*time.Minute)
	defInt(&c.MaxConcurrent, 32)
	defDur(&c.RequestTimeout, 5*time.Second)
	defInt(&c.MongoPool, 4)
}

// Validate checks the section, with keys relative to it.
func (c HTTPConfig) Validate() error { return validateSection(c) }

func (c HTTPConfig) validate(p *problems) {
	if c.MaxConcurrent < 1 || c.MongoPool < 1 {
		p.add("", "max_concurrent and mongodb_pool must be at least 1")
	}
}
