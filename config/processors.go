package config

import (
	"slices"
	"sync"
)

// ProcessorSpec is what the configuration must know of a processor to check
// a handler that names it: its outputs. The processors themselves live in
// the handlers package, which registers each with RegisterProcessor, as
// database/sql drivers register themselves: this package imports nothing
// of the pipeline.
type ProcessorSpec struct {
	// Routes names the outputs of a processor with several, each given a
	// topic under the handler's routes.
	Routes []string
	// Publishes says the processor has one output, the handler's publish.
	// A processor with neither settles lines itself.
	Publishes bool
	// Doc says in a line what the processor does.
	Doc string
	// Fields, set for a processor that aggregates, lists the line fields
	// it can read (name → "number" or "text"); its handlers need an
	// aggregate section and record no status.
	Fields map[string]string
}

var (
	processorsMu sync.RWMutex
	processors   = map[string]ProcessorSpec{}
)

// RegisterProcessor makes a processor name known to Validate. It panics on
// a name registered twice, which is a programming error.
func RegisterProcessor(name string, spec ProcessorSpec) {
	processorsMu.Lock()
	defer processorsMu.Unlock()
	if _, dup := processors[name]; dup {
		panic("config: processor " + name + " registered twice")
	}
	processors[name] = spec
}

func processor(name string) (ProcessorSpec, bool) {
	processorsMu.RLock()
	defer processorsMu.RUnlock()
	spec, ok := processors[name]
	return spec, ok
}

// Processors returns the registered processor names, sorted.
func Processors() []string {
	processorsMu.RLock()
	defer processorsMu.RUnlock()
	names := make([]string, 0, len(processors))
	for n := range processors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Stages are the statuses a handler may record on success, in pipeline
// order; the status package's own list (status.Stages) is the same, which
// its tests check.
var Stages = []string{"generated", "validated", "enriched", "routed", "delivered"}
