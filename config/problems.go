package config

import (
	"fmt"
	"strings"
	"time"
)

// problems collects validation errors, each with its key. A section's
// checks see a problems scoped to the section's key (see at), so that each
// config struct validates itself with keys relative to its own.
type problems struct {
	prefix string
	list   *[]problem
}

type problem struct {
	path string
	msg  string
}

// at returns the problems of the section under key.
func (p *problems) at(key string) *problems {
	if p.list == nil {
		p.list = &[]problem{}
	}
	return &problems{prefix: joinKey(p.prefix, key), list: p.list}
}

// add records a problem of key, relative to p's section ("" for the
// section itself).
func (p *problems) add(key, format string, args ...any) {
	if p.list == nil {
		p.list = &[]problem{}
	}
	*p.list = append(*p.list, problem{path: joinKey(p.prefix, key), msg: fmt.Sprintf(format, args...)})
}

func (p *problems) len() int {
	if p.list == nil {
		return 0
	}
	return len(*p.list)
}

// joinKey joins a section's key and a key in it: "kafka" and "client" make
// "kafka.client", "handlers" and "[2].name" make "handlers[2].name".
func joinKey(prefix, key string) string {
	switch {
	case prefix == "":
		return key
	case key == "":
		return prefix
	case strings.HasPrefix(key, "["):
		return prefix + key
	}
	return prefix + "." + key
}

// validator is a config struct that checks itself.
type validator interface{ validate(p *problems) }

// validateSection is the Validate of one config struct: its problems, with
// keys relative to it.
func validateSection(v validator) error {
	var p problems
	v.validate(&p)
	return p.err(nil, "")
}

// ConfigError lists every problem found in a configuration.
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

func (p *problems) err(lines map[string]int, file string) error {
	if p.len() == 0 {
		return nil
	}
	var out []string
	for _, pr := range *p.list {
		prefix := pr.path + ": "
		if line := lineOf(lines, pr.path); line > 0 {
			prefix = fmt.Sprintf("%s:%d: %s: ", file, line, pr.path)
		}
		out = append(out, prefix+pr.msg)
	}
	return &ConfigError{Problems: out}
}

// lineOf finds the line of path or of its nearest parent that is in the file.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

func defStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defInt(i *int, v int) {
	if *i == 0 {
		*i = v
	}
}

func defDur(d *Duration, v time.Duration) {
	if d.Duration == 0 && d.err == nil && d.raw == "" {
		d.Duration = v
	}
}
