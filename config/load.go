package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that overrides a setting: the
// key path in upper case, with dots and dashes as underscores. List entries
// are addressed by name: ORDERFLOW_KAFKA_BROKERS, ORDERFLOW_MONGODB_URI,
// ORDERFLOW_HANDLERS_ENRICH_ENABLED, ORDERFLOW_TOPICS_RAW_ORDER_PARTITIONS,
// ORDERFLOW_MIDDLEWARE_RETRY_MAX_RETRIES.
const EnvPrefix = "ORDERFLOW_"

// MaxConfigBytes bounds a configuration file: the shipped one is 8 KB, and
// a huge one would only cost memory and time to refuse.
const MaxConfigBytes = 1 << 20

// Load reads a configuration: the YAML in data (named file in errors), then
// environment variables from env on top, then defaults for what is still
// unset. The result is validated; every problem is reported with its key
// and, when it comes from the file, its line.
func Load(data []byte, file string, env func(string) (string, bool)) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, &ConfigError{Problems: []string{fmt.Sprintf("%s: %d bytes is over the %d-byte limit of a configuration file", file, len(data), MaxConfigBytes)}}
	}
	var p problems
	lines := map[string]int{}
	cfg := &Config{}
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(doc.Content) > 0 {
			walkNode(doc.Content[0], reflect.TypeOf(Config{}), "", lines, map[string]string{}, &p)
		}
		if err := p.err(lines, file); err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, cfg); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				out := make([]string, len(te.Errors))
				for i, e := range te.Errors {
					out[i] = file + ": " + e
				}
				return nil, &ConfigError{Problems: out}
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	// Every name the overlay looks up is a valid variable: CheckEnviron and
	// `config env` use the list.
	looked := map[string]bool{}
	lookup := func(name string) (string, bool) {
		looked[name] = true
		if env == nil {
			return "", false
		}
		return env(name)
	}
	applyEnv(reflect.ValueOf(cfg).Elem(), strings.TrimSuffix(EnvPrefix, "_"), lookup, &p)
	for name := range looked {
		cfg.envNames = append(cfg.envNames, name)
	}
	slices.Sort(cfg.envNames)
	cfg.setDefaults()
	cfg.validate(&p)
	if err := p.err(lines, file); err != nil {
		return nil, err
	}
	return cfg, nil
}

// OSEnv reads the process environment.
func OSEnv(name string) (string, bool) { return os.LookupEnv(name) }

var (
	durationType   = reflect.TypeOf(Duration{})
	middlewareType = reflect.TypeOf(Middleware{})
)

// walkNode checks the YAML tree against the Go type: every key must be a
// known one, and no secret may be written in the file. It records the line
// of every key it meets under its path ("handlers[1].processor").
func walkNode(n *yaml.Node, t reflect.Type, path string, lines map[string]int, names map[string]string, p *problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := lines[path]; !ok {
			lines[path] = n.Line
		}
	}
	switch {
	case t == durationType:
		return
	case t == middlewareType:
		if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
			kind := n.Content[0].Value
			if f := middlewareParams[kind]; f != nil {
				walkNode(n.Content[1], reflect.TypeOf(f()), path+"."+kind, lines, names, p)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			f, ok := fieldByTag(t, key.Value)
			at := join(path, key.Value)
			lines[at] = key.Line
			if !ok {
				p.add(at, "unknown key %q%s", key.Value, suggest(t, key.Value))
				continue
			}
			if f.Tag.Get("secret") == "true" && val.Value != "" {
				p.add(at, "secrets must not be written in the file: set %s in the environment instead", envName(envPath(at, names)))
				continue
			}
			if key.Value == "url" && at != "mongodb.uri" {
				if u, err := url.Parse(val.Value); err == nil && u.User != nil {
					p.add(at, "the URL holds user info (user:password@): keep credentials out of the file, and give the partner a token in %s", envName(envPath(strings.TrimSuffix(at, ".url")+".token", names)))
					continue
				}
			}
			if at == "mongodb.uri" {
				if u, err := url.Parse(val.Value); err == nil && u.User != nil {
					if _, has := u.User.Password(); has {
						p.add(at, "the URI holds a password: keep it out of the file and set ORDERFLOW_MONGODB_PASSWORD (or the whole ORDERFLOW_MONGODB_URI) in the environment")
					}
				}
			}
			walkNode(val, f.Type, at, lines, names, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			at := fmt.Sprintf("%s[%d]", path, i)
			// The environment addresses list entries by name.
			if item.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(item.Content); j += 2 {
					if item.Content[j].Value == "name" {
						names[at] = item.Content[j+1].Value
					}
				}
			}
			walkNode(item, t.Elem(), at, lines, names, p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			at := join(path, n.Content[i].Value)
			lines[at] = n.Content[i].Line
			walkNode(n.Content[i+1], t.Elem(), at, lines, names, p)
		}
	}
}

// envPath turns a key path with list indexes into the one the environment
// uses, with list entries by name: delivery.partners[2].sink.token becomes
// delivery.partners.acme.sink.token.
func envPath(path string, names map[string]string) string {
	out := path
	for at, name := range names {
		if strings.HasPrefix(path, at) {
			i := strings.LastIndex(at, "[")
			out = strings.Replace(out, at[i:], "."+name, 1)
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == tag {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// suggest names the known keys of t, to help with a typo.
func suggest(t reflect.Type, _ string) string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return " (known keys: " + strings.Join(keys, ", ") + ")"
}

// walkDurations calls fn with every Duration of the configuration and its
// key path, so invalid ones can be reported.
func walkDurations(c *Config, fn func(path string, d Duration)) {
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch {
		case v.Type() == durationType:
			fn(path, v.Interface().(Duration))
			return
		case v.Type() == middlewareType:
			m := v.Interface().(Middleware)
			if params := m.params(); params != nil && !isNilPointer(params) {
				walk(reflect.ValueOf(params).Elem(), path+"."+m.Kind)
			}
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
				if tag != "" && tag != "-" {
					walk(v.Field(i), join(path, tag))
				}
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k), join(path, k.String()))
			}
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem(), path)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
}
