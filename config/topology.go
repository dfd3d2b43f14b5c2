package config

import (
	"fmt"
	"slices"
	"strings"
)

// Topology is the configured graph as one value: what feeds each topic, the
// handlers with their consumer groups, inputs, outputs and middleware
// stacks, and the poison queues. `config check` validates it as a graph and
// `orderflow topology` prints it.
type Topology struct {
	// Sources are the topics fed from outside the handlers: the generator's
	// and those declared external.
	Sources []string
	// Handlers are the enabled handlers, in configuration order.
	Handlers []TopologyHandler
	// Poison are the poison queue topics of the stacks in use.
	Poison []string
}

// TopologyHandler is one handler of the graph.
type TopologyHandler struct {
	Index     int // position in the configuration's handlers list
	Name      string
	Processor string
	Group     string
	Input     string
	// Outputs maps a route ("" for a processor with one output) to its
	// topic.
	Outputs map[string]string
	// Middleware names the stack, outermost first.
	Middleware []string
	// AllowCycle is set when the handler declares that a cycle through it
	// is wanted.
	AllowCycle bool
}

// OutputTopics returns the handler's output topics, sorted.
func (h TopologyHandler) OutputTopics() []string {
	var out []string
	for _, t := range h.Outputs {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// routes returns the handler's route names, sorted ("" for one output).
func (h TopologyHandler) routes() []string {
	routes := make([]string, 0, len(h.Outputs))
	for r := range h.Outputs {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	return routes
}

// Topology returns the graph of the enabled handlers.
func (c *Config) Topology() Topology {
	var t Topology
	t.Sources = append(t.Sources, c.Generator.Topic)
	for _, name := range sortedKeys(c.Topics) {
		if c.Topics[name].External && !slices.Contains(t.Sources, name) {
			t.Sources = append(t.Sources, name)
		}
	}
	for i, h := range c.Handlers {
		if !h.IsEnabled() {
			continue
		}
		th := TopologyHandler{Index: i, Name: h.Name, Processor: h.Processor, Group: h.Group, Input: h.Subscribe,
			Outputs: map[string]string{}, AllowCycle: h.AllowCycle}
		var stack []string
		for _, m := range c.StackFor(h) {
			stack = append(stack, m.Kind)
		}
		if a := h.Aggregate; a != nil {
			if a.Repartition != "" {
				// The first hop re-keys the lines by the group.
				t.Handlers = append(t.Handlers, TopologyHandler{Index: i, Name: h.RepartitionName(), Processor: "repartition",
					Group: h.Group, Input: h.Subscribe, Outputs: map[string]string{"": a.Repartition}, Middleware: stack, AllowCycle: h.AllowCycle})
				th.Group, th.Input = h.RepartitionGroup(), a.Repartition
			}
			if a.Window != nil && a.Window.Topic != "" {
				th.Outputs["window"] = a.Window.Topic
			}
		}
		if h.Publish != "" {
			th.Outputs[""] = h.Publish
		}
		for r, topic := range h.Routes {
			th.Outputs[r] = topic
		}
		th.Middleware = stack
		for _, m := range c.StackFor(h) {
			if m.Poison != nil && !slices.Contains(t.Poison, m.Poison.Topic) {
				t.Poison = append(t.Poison, m.Poison.Topic)
			}
		}
		t.Handlers = append(t.Handlers, th)
	}
	return t
}

// check reports the graphs that cannot work, each with the handler, the key
// and what to change.
func (t Topology) check(p *problems) {
	if len(t.Handlers) == 0 {
		p.add("handlers", "every handler is disabled: nothing would run; enable at least one")
		return
	}
	producers := map[string][]string{}
	for _, s := range t.Sources {
		producers[s] = append(producers[s], "the generator or an outside producer")
	}
	for _, h := range t.Handlers {
		for _, o := range h.OutputTopics() {
			producers[o] = append(producers[o], h.Name)
		}
	}
	for _, h := range t.Handlers {
		at := fmt.Sprintf("handlers[%d]", h.Index)
		if slices.Contains(t.Poison, h.Input) {
			p.add(at+".subscribe", "handler %q consumes the poison queue %s: poisoned lines are replayed with `orderflow poison replay`, not consumed by a handler", h.Name, h.Input)
		} else if len(producers[h.Input]) == 0 {
			p.add(at+".subscribe", "handler %q consumes %s, which no enabled handler, the generator or an outside producer publishes to: enable the handler that feeds it, or declare topics.%s.external: true",
				h.Name, h.Input, h.Input)
		}
		for _, o := range h.OutputTopics() {
			key := at + ".publish"
			if h.Outputs[""] != o {
				key = at + ".routes"
			}
			switch {
			case o == h.Input:
				p.add(key, "handler %q publishes to its own input %s: every line would come back to it without end", h.Name, o)
			case slices.Contains(t.Poison, o):
				p.add(key, "handler %q publishes to the poison queue %s: only the poison_queue middleware writes there", h.Name, o)
			}
		}
	}
	if cycle := t.cycle(); cycle != nil {
		h := t.Handlers[cycle[0]]
		var names []string
		for _, i := range cycle {
			names = append(names, t.Handlers[i].Name)
		}
		p.add(fmt.Sprintf("handlers[%d]", h.Index), "handlers %s form a cycle (%s → %s): a line would go round without end; break it, or set allow_cycle: true on each of them if it is meant",
			strings.Join(names, ", "), strings.Join(names, " → "), names[0])
	}
}

// cycle returns the handlers, by position in Handlers, of a cycle that not
// every member allows, or nil. A handler publishing to its own input is
// reported on its own and not here.
func (t Topology) cycle() []int {
	next := make([][]int, len(t.Handlers))
	for i, h := range t.Handlers {
		for _, o := range h.OutputTopics() {
			for j, g := range t.Handlers {
				if j != i && g.Input == o {
					next[i] = append(next[i], j)
				}
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(t.Handlers))
	var path []int
	var found []int
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = onPath
		path = append(path, i)
		for _, j := range next[i] {
			switch state[j] {
			case onPath:
				start := slices.Index(path, j)
				c := slices.Clone(path[start:])
				if slices.ContainsFunc(c, func(k int) bool { return !t.Handlers[k].AllowCycle }) {
					found = c
					return true
				}
			case unseen:
				if visit(j) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return false
	}
	for i := range t.Handlers {
		if state[i] == unseen && visit(i) {
			return found
		}
	}
	return nil
}

// String renders the topology as text, one handler a block.
func (t Topology) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sources: %s\n", strings.Join(t.Sources, ", "))
	for _, h := range t.Handlers {
		fmt.Fprintf(&b, "\n%s (%s)\n", h.Name, h.Processor)
		fmt.Fprintf(&b, "  consumes   %s in group %s\n", h.Input, h.Group)
		for _, r := range h.routes() {
			if r == "" {
				fmt.Fprintf(&b, "  publishes  %s\n", h.Outputs[r])
			} else {
				fmt.Fprintf(&b, "  route %-8s -> %s\n", r, h.Outputs[r])
			}
		}
		if len(h.Outputs) == 0 {
			fmt.Fprintf(&b, "  publishes  nothing (settles lines itself)\n")
		}
		fmt.Fprintf(&b, "  middleware %s\n", strings.Join(h.Middleware, " > "))
	}
	if len(t.Poison) > 0 {
		fmt.Fprintf(&b, "\npoison queue: %s\n", strings.Join(t.Poison, ", "))
	}
	return b.String()
}

// Mermaid renders the topology as a Mermaid flowchart: topics as rounded
// nodes, handlers as boxes.
func (t Topology) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := func(topic string) string { return "t_" + strings.NewReplacer("-", "_", ".", "_").Replace(topic) }
	topics := slices.Clone(t.Sources)
	for _, h := range t.Handlers {
		topics = append(topics, h.Input)
		topics = append(topics, h.OutputTopics()...)
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	for _, topic := range topics {
		fmt.Fprintf(&b, "  %s([%s])\n", id(topic), topic)
	}
	for _, h := range t.Handlers {
		fmt.Fprintf(&b, "  h_%d[\"%s<br/>%s<br/>group %s\"]\n", h.Index, h.Name, h.Processor, h.Group)
		fmt.Fprintf(&b, "  %s --> h_%d\n", id(h.Input), h.Index)
		for _, r := range h.routes() {
			o := h.Outputs[r]
			if r == "" {
				fmt.Fprintf(&b, "  h_%d --> %s\n", h.Index, id(o))
			} else {
				fmt.Fprintf(&b, "  h_%d -- %s --> %s\n", h.Index, r, id(o))
			}
		}
	}
	for _, q := range t.Poison {
		fmt.Fprintf(&b, "  %s[(%s)]\n", id(q), q)
	}
	return b.String()
}

// CheckOnly checks the handler names given to `run --only`: each must be an
// enabled handler of the configuration. A disabled handler is refused rather
// than run, so that what `config check` validated (the enabled handlers) is
// what runs; enable it in the file or with ORDERFLOW_HANDLERS_<NAME>_ENABLED.
func (c *Config) CheckOnly(names []string) error {
	var p problems
	for _, name := range names {
		i := slices.IndexFunc(c.Handlers, func(h HandlerConfig) bool { return h.Name == name })
		switch {
		case i < 0:
			var known []string
			for _, h := range c.Handlers {
				known = append(known, h.Name)
			}
			p.add("--only", "no handler named %q (handlers: %s)", name, strings.Join(known, ", "))
		case !c.Handlers[i].IsEnabled():
			p.add("--only", "handler %q is disabled (enabled: false): enable it, or leave it out of --only", name)
		}
	}
	return p.err(nil, "")
}
