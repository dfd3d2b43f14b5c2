package config

import (
	"fmt"
	"net/url"
	"time"
)

// DeliveryConfig configures the partner delivery stage.
type DeliveryConfig struct {
	// AssemblyTimeout is how long a line waits for the other external lines
	// of its order.
	AssemblyTimeout Duration `yaml:"assembly_timeout"`
	// DeliverTimeout bounds one order's delivery: its partners' sinks and
	// the status write. It must be shorter than kafka.drain_timeout.
	DeliverTimeout Duration `yaml:"deliver_timeout"`
	// MaxLookups is how many status lookups of waiting lines (is this
	// straggler's order delivered already?) may run at once.
	MaxLookups int             `yaml:"max_lookups"`
	Partners   []PartnerConfig `yaml:"partners"`
}

// PartnerConfig is one external partner: which lines it gets and where they go.
type PartnerConfig struct {
	Name  string      `yaml:"name"`
	Match MatchConfig `yaml:"match"`
	Sink  SinkConfig  `yaml:"sink"`
}

// MatchConfig selects lines by product metadata.
type MatchConfig struct {
	RouteIDs   []int    `yaml:"route_ids"`
	Categories []string `yaml:"categories"`
}

// SinkConfig is where a partner's orders go.
type SinkConfig struct {
	// Type is "dir" or "http".
	Type string `yaml:"type"`
	// Path is the directory of a dir sink.
	Path string `yaml:"path"`
	// URL is the endpoint of an http sink.
	URL             string   `yaml:"url"`
	Timeout         Duration `yaml:"timeout"`
	MaxRetries      int      `yaml:"max_retries"`
	InitialInterval Duration `yaml:"initial_interval"`
	MaxInterval     Duration `yaml:"max_interval"`
	// Token, when set, is sent as a bearer token; from the environment only.
	Token string `yaml:"token" secret:"true"`
}

func (c *DeliveryConfig) setDefaults() {
	defDur(&c.AssemblyTimeout, time.Minute)
	defDur(&c.DeliverTimeout, 15*time.Second)
	if c.MaxLookups == 0 {
		c.MaxLookups = 2
	}
	for i := range c.Partners {
		s := &c.Partners[i].Sink
		defDur(&s.Timeout, 5*time.Second)
		defDur(&s.InitialInterval, 200*time.Millisecond)
		defDur(&s.MaxInterval, 5*time.Second)
	}
}

// Validate checks the section, with keys relative to it.
func (c DeliveryConfig) Validate() error { return validateSection(c) }

func (c DeliveryConfig) validate(p *problems) {
	if c.MaxLookups < 0 {
		p.add("max_lookups", "must not be negative")
	}
	names := map[string]bool{}
	for i, pc := range c.Partners {
		at := fmt.Sprintf("partners[%d]", i)
		if pc.Name == "" {
			p.add(at+".name", "is empty")
		} else if names[pc.Name] {
			p.add(at+".name", "partner %q is defined twice", pc.Name)
		}
		names[pc.Name] = true
		if len(pc.Match.RouteIDs) == 0 && len(pc.Match.Categories) == 0 {
			p.add(at+".match", "needs route_ids or categories")
		}
		s := pc.Sink
		switch s.Type {
		case "dir":
			if s.Path == "" {
				p.add(at+".sink.path", "a dir sink needs a path")
			}
		case "http":
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(at+".sink.url", "%q is not an http(s) URL", s.URL)
			}
			if s.MaxRetries < 0 {
				p.add(at+".sink.max_retries", "must not be negative")
			}
		default:
			p.add(at+".sink.type", "%q is not dir or http", s.Type)
		}
	}
}
