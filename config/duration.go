package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as "1.5s" or "200ms". A value that does
// not parse is kept with its error, so that Validate can report it with its
// key and line.
type Duration struct {
	time.Duration
	raw string
	err error
}

// D returns a Duration.
func D(d time.Duration) Duration { return Duration{Duration: d} }

// UnmarshalYAML parses the duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.raw = n.Value
	d.Duration, d.err = time.ParseDuration(n.Value)
	return nil
}

// MarshalYAML writes the duration back as text.
func (d Duration) MarshalYAML() (any, error) {
	if d.err != nil {
		return d.raw, nil
	}
	return d.String(), nil
}

func (d *Duration) set(s string) {
	d.raw = s
	d.Duration, d.err = time.ParseDuration(s)
}
