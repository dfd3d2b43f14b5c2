package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/orderflow/orderflow/failure"
)

// Middleware is one entry of a middleware stack: its kind and its
// parameters. In YAML it is either a name ("recoverer") or a one-key map
// ("retry: {max_retries: 3}").
type Middleware struct {
	Kind     string
	Retry    *RetryParams
	Poison   *PoisonParams
	Timeout  *TimeoutParams
	Throttle *ThrottleParams
}

// Middleware kinds.
const (
	MWCorrelationID = "correlation_id"
	MWPoisonQueue   = "poison_queue"
	MWRetry         = "retry"
	MWRecoverer     = "recoverer"
	MWTimeout       = "timeout"
	MWThrottle      = "throttle"
)

// middlewareParams gives, for each kind, a new value of its parameters type
// (nil for kinds without parameters).
var middlewareParams = map[string]func() any{
	MWCorrelationID: nil,
	MWRecoverer:     nil,
	MWPoisonQueue:   func() any { return &PoisonParams{} },
	MWRetry:         func() any { return &RetryParams{} },
	MWTimeout:       func() any { return &TimeoutParams{} },
	MWThrottle:      func() any { return &ThrottleParams{} },
}

// RetryParams configures the retry middleware: exponential backoff with
// jitter. Permanent errors are never retried.
type RetryParams struct {
	MaxRetries      int      `yaml:"max_retries"`
	InitialInterval Duration `yaml:"initial_interval"`
	MaxInterval     Duration `yaml:"max_interval"`
	Multiplier      float64  `yaml:"multiplier"`
	// Jitter spreads each interval by up to this share either way.
	Jitter float64 `yaml:"jitter"`
}

// PoisonParams configures the poison queue middleware.
type PoisonParams struct {
	Topic string `yaml:"topic"`
	// Permanent lists the error kinds that go straight to the poison queue.
	Permanent []string `yaml:"permanent"`
	// AfterRetries poisons transient errors too once the retries are
	// exhausted (default true). Unavailability of MongoDB or the broker, and
	// anything during shutdown, is never poisoned.
	AfterRetries *bool `yaml:"after_retries"`
}

// TimeoutParams configures the timeout middleware.
type TimeoutParams struct {
	Duration Duration `yaml:"duration"`
}

// ThrottleParams configures the throttle middleware.
type ThrottleParams struct {
	PerSecond int `yaml:"per_second"`
}

func (m *Middleware) params() any {
	switch m.Kind {
	case MWRetry:
		return m.Retry
	case MWPoisonQueue:
		return m.Poison
	case MWTimeout:
		return m.Timeout
	case MWThrottle:
		return m.Throttle
	}
	return nil
}

// UnmarshalYAML reads a name or a one-key map.
func (m *Middleware) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		m.Kind = n.Value
		if f, ok := middlewareParams[m.Kind]; ok && f != nil {
			m.setParams(f())
		}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return fmt.Errorf("line %d: a middleware entry is a name or a map with one key", n.Line)
		}
		m.Kind = n.Content[0].Value
		f, ok := middlewareParams[m.Kind]
		if !ok || f == nil {
			return nil // reported by Validate with the line
		}
		p := f()
		if err := n.Content[1].Decode(p); err != nil {
			return err
		}
		m.setParams(p)
		return nil
	}
	return fmt.Errorf("line %d: a middleware entry is a name or a map with one key", n.Line)
}

func (m *Middleware) setParams(p any) {
	switch p := p.(type) {
	case *RetryParams:
		m.Retry = p
	case *PoisonParams:
		m.Poison = p
	case *TimeoutParams:
		m.Timeout = p
	case *ThrottleParams:
		m.Throttle = p
	}
}

// MarshalYAML writes the entry back in its short form.
func (m Middleware) MarshalYAML() (any, error) {
	if p := m.params(); p != nil && !isNilPointer(p) {
		return map[string]any{m.Kind: p}, nil
	}
	return m.Kind, nil
}

func (m *Middleware) setDefaults() {
	switch {
	case m.Retry != nil:
		defDur(&m.Retry.InitialInterval, 100*time.Millisecond)
		defDur(&m.Retry.MaxInterval, 5*time.Second)
		if m.Retry.Multiplier == 0 {
			m.Retry.Multiplier = 2
		}
	case m.Poison != nil:
		defStr(&m.Poison.Topic, "poison_queue")
		if m.Poison.Permanent == nil {
			for _, k := range failure.Kinds {
				m.Poison.Permanent = append(m.Poison.Permanent, string(k))
			}
		}
		if m.Poison.AfterRetries == nil {
			t := true
			m.Poison.AfterRetries = &t
		}
	case m.Timeout != nil:
		defDur(&m.Timeout.Duration, 30*time.Second)
	}
}

func (c *Config) validateStack(p *problems, path string, stack []Middleware) {
	seen := map[string]int{}
	for i, m := range stack {
		at := fmt.Sprintf("%s[%d]", path, i)
		if _, ok := middlewareParams[m.Kind]; !ok {
			p.add(at, "unknown middleware %q (known: %s)", m.Kind, strings.Join(sortedKeys(middlewareParams), ", "))
			continue
		}
		if _, dup := seen[m.Kind]; dup {
			p.add(at, "%s appears twice in the stack", m.Kind)
		}
		seen[m.Kind] = i
		switch {
		case m.Retry != nil:
			r := m.Retry
			if r.MaxRetries < 0 {
				p.add(at+".retry.max_retries", "must not be negative")
			}
			if r.Multiplier < 1 {
				p.add(at+".retry.multiplier", "must be at least 1")
			}
			if r.Jitter < 0 || r.Jitter >= 1 {
				p.add(at+".retry.jitter", "must be in 0..1")
			}
			if r.MaxInterval.Duration < r.InitialInterval.Duration {
				p.add(at+".retry.max_interval", "is below initial_interval")
			}
		case m.Poison != nil:
			c.checkTopic(p, at+".poison_queue.topic", m.Poison.Topic)
			for j, kind := range m.Poison.Permanent {
				if !slices.Contains(failure.Kinds, failure.Kind(kind)) {
					p.add(fmt.Sprintf("%s.poison_queue.permanent[%d]", at, j), "unknown error kind %q (known: %s)", kind, kindList())
				}
			}
		case m.Throttle != nil:
			if m.Throttle.PerSecond < 1 {
				p.add(at+".throttle.per_second", "must be at least 1")
			}
		case m.Timeout != nil:
			if m.Timeout.Duration.Duration <= 0 {
				p.add(at+".timeout.duration", "must be positive")
			}
		}
	}
	// The order that works: the poison queue outside the retries, so that it
	// sees an error only once the retries are spent, and the recoverer inside
	// both, so that a panic becomes an error they handle.
	if pq, ok := seen[MWPoisonQueue]; ok {
		if r, ok := seen[MWRetry]; ok && r < pq {
			p.add(fmt.Sprintf("%s[%d]", path, pq), "poison_queue must come before retry: after it, it would poison messages before they are retried")
		}
	}
	if rec, ok := seen[MWRecoverer]; ok {
		for _, outer := range []string{MWPoisonQueue, MWRetry} {
			if o, ok := seen[outer]; ok && o > rec {
				p.add(fmt.Sprintf("%s[%d]", path, rec), "recoverer must come after %s, so that a panic reaches it as an error", outer)
			}
		}
	}
}

// holdsForever says why a stack can redeliver a failing line without end,
// or "" when it cannot.
func holdsForever(stack []Middleware) string {
	for _, m := range stack {
		if m.Poison != nil {
			if m.Poison.AfterRetries != nil && !*m.Poison.AfterRetries {
				return "its poison_queue has after_retries: false (errors other than its permanent kinds are never poisoned)"
			}
			return ""
		}
	}
	return "its middleware has no poison_queue"
}

func kindList() string {
	var s []string
	for _, k := range failure.Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
