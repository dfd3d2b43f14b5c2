package config

import "slices"

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (text on a terminal, JSON otherwise), text, json
}

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
	// Exporter is "stdout" or "otlp" (OTLP over HTTP to Endpoint).
	Exporter    string `yaml:"exporter"`
	Endpoint    string `yaml:"endpoint"`
	ServiceName string `yaml:"service_name"`
}

func (c *LogConfig) setDefaults() {
	defStr(&c.Level, "info")
	defStr(&c.Format, "auto")
}

// Validate checks the section, with keys relative to it.
func (c LogConfig) Validate() error { return validateSection(c) }

func (c LogConfig) validate(p *problems) {
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Level) {
		p.add("level", "%q is not debug, info, warn or error", c.Level)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, c.Format) {
		p.add("format", "%q is not auto, text or json", c.Format)
	}
}

func (c *TracingConfig) setDefaults() {
	defStr(&c.Exporter, "stdout")
	defStr(&c.ServiceName, "orderflow")
}

// Validate checks the section, with keys relative to it.
func (c TracingConfig) Validate() error { return validateSection(c) }

func (c TracingConfig) validate(p *problems) {
	if c.Exporter != "stdout" && c.Exporter != "otlp" {
		p.add("exporter", "%q is not stdout or otlp", c.Exporter)
	}
}
