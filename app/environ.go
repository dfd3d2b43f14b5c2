package app

import (
	"slices"
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
