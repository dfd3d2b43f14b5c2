package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// notSettings are the ORDERFLOW_ variables that are not settings of the
// file, so an environment holding them is not refused.
var notSettings = []string{"ORDERFLOW_CONFIG", "ORDERFLOW_REQUIRE_BROWSER", "ORDERFLOW_FAULT_REPORT"}

// notSettingPrefixes are families of such variables (the tests' servers).
var notSettingPrefixes = []string{"ORDERFLOW_TEST_"}

// EnvNames lists every environment variable that overrides a setting of this
// configuration, from the same schema that validates the file: list entries
// by name (ORDERFLOW_HANDLERS_DELIVER_MIDDLEWARE_RETRY_MAX_RETRIES), map
// entries by key. A handler with a middleware list of its own is set through
// its own names; ORDERFLOW_MIDDLEWARE_* sets the default stack only.
func (c *Config) EnvNames() []string { return slices.Clone(c.envNames) }

// CheckEnviron refuses ORDERFLOW_ variables in environ (as os.Environ gives
// it) that set nothing, as an unknown key in the file is refused, naming the
// nearest valid variable.
func (c *Config) CheckEnviron(environ []string) error {
	var p problems
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || slices.Contains(c.envNames, name) || slices.Contains(notSettings, name) ||
			slices.ContainsFunc(notSettingPrefixes, func(pre string) bool { return strings.HasPrefix(name, pre) }) {
			continue
		}
		p.add("environment "+name, "no setting has this variable; did you mean %s? (`orderflow config env` lists them all)", nearest(name, c.envNames))
	}
	return p.err(nil, "")
}

// nearest returns the candidate closest to s by edit distance.
func nearest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envName is the environment variable of a key path such as
// "kafka.sasl.password".
func envName(path string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for _, r := range strings.ToUpper(path) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// applyEnv sets every value whose environment variable is set. name is the
// variable name of v without the trailing underscore.
func applyEnv(v reflect.Value, name string, env func(string) (string, bool), p *problems) {
	switch {
	case v.Type() == durationType:
		if s, ok := env(name); ok {
			v.Addr().Interface().(*Duration).set(s)
		}
		return
	case v.Type() == middlewareType:
		m := v.Addr().Interface().(*Middleware)
		if params := m.params(); params != nil && !isNilPointer(params) {
			applyEnv(reflect.ValueOf(params).Elem(), name, env, p)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			applyEnv(v.Field(i), name+"_"+envPart(tag), env, p)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := 0; i < v.Len(); i++ {
				elem := v.Index(i)
				if key := elemName(elem); key != "" {
					applyEnv(elem, name+"_"+envPart(key), env, p)
				}
			}
			return
		}
		s, ok := env(name)
		if !ok {
			return
		}
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), 0, len(parts))
		for _, part := range parts {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := setScalar(elem, part); err != nil {
				p.add("environment "+name, "%v", err)
				return
			}
			out = reflect.Append(out, elem)
		}
		v.Set(out)
	case reflect.Map:
		for _, k := range v.MapKeys() {
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(v.MapIndex(k))
			applyEnv(val, name+"_"+envPart(k.String()), env, p)
			v.SetMapIndex(k, val)
		}
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Struct {
			if !v.IsNil() {
				applyEnv(v.Elem(), name, env, p)
			}
			return
		}
		s, ok := env(name)
		if !ok {
			return
		}
		elem := reflect.New(v.Type().Elem())
		if err := setScalar(elem.Elem(), s); err != nil {
			p.add("environment "+name, "%v", err)
			return
		}
		v.Set(elem)
	default:
		if s, ok := env(name); ok {
			if err := setScalar(v, s); err != nil {
				p.add("environment "+name, "%v", err)
			}
		}
	}
}

func envPart(key string) string { return strings.TrimPrefix(envName(key), EnvPrefix) }

// elemName is the name a list entry is addressed by in the environment.
func elemName(v reflect.Value) string {
	if v.Type() == middlewareType {
		return v.FieldByName("Kind").String()
	}
	if f := v.FieldByName("Name"); f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

func setScalar(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
