package config

import "time"

// StatusConfig configures the status recorder.
type StatusConfig struct {
	MaxBatch     int      `yaml:"max_batch"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// OpenOrderQuiet: an order whose lines come in the original system's
	// format (no line count) is final once its lines seen are and none came
	// for this long.
	OpenOrderQuiet Duration `yaml:"open_order_quiet"`
	// OrderStatus keeps the order_status collection for any MongoDB client
	// (default true); false leaves only the records.
	OrderStatus *bool `yaml:"order_status"`
	// LineClaims claims the first copy of every line read from a source
	// topic in line_claims (default true), so that a copy with other
	// content is poisoned as a conflict. false trusts the producers: a
	// reused order id then mixes two orders' lines.
	LineClaims *bool `yaml:"line_claims"`
}

// OrderStatusEnabled says whether the order_status collection is kept.
func (c StatusConfig) OrderStatusEnabled() bool { return c.OrderStatus == nil || *c.OrderStatus }

// LineClaimsEnabled says whether lines are claimed (see LineClaims).
func (c StatusConfig) LineClaimsEnabled() bool { return c.LineClaims == nil || *c.LineClaims }

func (c *StatusConfig) setDefaults() {
	defInt(&c.MaxBatch, 4000)
	defDur(&c.WriteTimeout, 10*time.Second)
	defDur(&c.OpenOrderQuiet, 10*time.Second)
}

// Validate checks the section, with keys relative to it.
func (c StatusConfig) Validate() error { return validateSection(c) }

func (c StatusConfig) validate(p *problems) {
	if c.MaxBatch < 1 {
		p.add("max_batch", "must be at least 1")
	}
}
