package config

import "time"

// MetadataConfig configures the in-memory metadata cache.
type MetadataConfig struct {
	// RefreshInterval re-reads the metadata in the background, for edits
	// made by hand.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// MissRefreshInterval: a lookup miss waits for a read begun after it,
	// at most one such read per interval.
	MissRefreshInterval Duration `yaml:"miss_refresh_interval"`
	// VersionPollInterval: how often routers check whether `metadata load`
	// ran; a load reaches them within it.
	VersionPollInterval Duration `yaml:"version_poll_interval"`
	// UnknownReferenceGrace: how long a line whose location or product is
	// missing waits for it before it is poisoned as unknown_reference.
	UnknownReferenceGrace Duration `yaml:"unknown_reference_grace"`
}

func (c *MetadataConfig) setDefaults() {
	defDur(&c.RefreshInterval, 30*time.Second)
	defDur(&c.MissRefreshInterval, time.Second)
	defDur(&c.VersionPollInterval, 250*time.Millisecond)
	defDur(&c.UnknownReferenceGrace, 10*time.Second)
}

// Validate checks the section, with keys relative to it.
func (c MetadataConfig) Validate() error { return validateSection(c) }

func (c MetadataConfig) validate(p *problems) {
	if c.VersionPollInterval.Duration == 0 && c.VersionPollInterval.raw != "" {
		p.add("version_poll_interval", "must be positive")
	}
}
