package config

// GeneratorConfig configures `orderflow generate`.
type GeneratorConfig struct {
	Topic string `yaml:"topic"`
	// FraudShare is the share of orders given an IP from the fraud list.
	FraudShare float64 `yaml:"fraud_share"`
	// Workers is how many orders are published concurrently.
	Workers int `yaml:"workers"`
}

func (c *GeneratorConfig) setDefaults() {
	defStr(&c.Topic, "raw_order")
	defInt(&c.Workers, 16)
}

// Validate checks the section, with keys relative to it; that its topic is
// declared is checked with the whole configuration.
func (c GeneratorConfig) Validate() error { return validateSection(c) }

func (c GeneratorConfig) validate(p *problems) {
	if c.FraudShare < 0 || c.FraudShare > 1 {
		p.add("fraud_share", "%v is outside 0..1", c.FraudShare)
	}
	if c.Workers < 1 {
		p.add("workers", "must be at least 1")
	}
}
