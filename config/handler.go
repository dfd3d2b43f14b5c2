package config

import (
	"fmt"
	"slices"
	"strings"
)

// TopicConfig configures a topic.
type TopicConfig struct {
	Partitions int `yaml:"partitions"`
	// External declares that something outside orderflow publishes to the
	// topic, so a handler may consume it though no handler feeds it.
	External bool `yaml:"external"`
}

// HandlerConfig is one handler of the router.
type HandlerConfig struct {
	Name string `yaml:"name"`
	// Processor names the processor in the registry.
	Processor string `yaml:"processor"`
	// Enabled defaults to true.
	Enabled   *bool  `yaml:"enabled"`
	Subscribe string `yaml:"subscribe"`
	Group     string `yaml:"group"`
	// Publish is the output topic of a processor with one output.
	Publish string `yaml:"publish"`
	// Routes maps the named outputs of a processor with several (route:
	// internal, external) to topics.
	Routes map[string]string `yaml:"routes"`
	// Status is recorded for each line the handler passes on.
	Status string `yaml:"status"`
	// Middleware replaces the default stack for this handler. Left out
	// when empty, so that a configuration printed and read back (config
	// print, the bench) keeps the default stack.
	Middleware []Middleware `yaml:"middleware,omitempty"`
	// AllowCycle declares that a cycle of handlers through this one is
	// meant; without it on every member, config check refuses the cycle.
	AllowCycle bool `yaml:"allow_cycle"`
	// RedeliverForever declares that this handler's stack may redeliver a
	// failing line without end (no poison queue, or after_retries: false);
	// without it, config check refuses such a stack.
	RedeliverForever bool `yaml:"redeliver_forever"`
	// Aggregate configures a handler of an aggregating processor.
	Aggregate *AggregateConfig `yaml:"aggregate,omitempty"`
}

// IsEnabled reports whether the handler runs.
func (h HandlerConfig) IsEnabled() bool { return h.Enabled == nil || *h.Enabled }

func (c *Config) checkTopic(p *problems, path, topic string) {
	if topic == "" {
		p.add(path, "no topic given")
		return
	}
	if _, ok := c.Topics[topic]; !ok {
		p.add(path, "topic %q is not declared under topics", topic)
	}
}

func (c *Config) validateHandlers(p *problems) {
	names := map[string]bool{}
	subscriptions := map[[2]string]string{}
	for i, h := range c.Handlers {
		at := fmt.Sprintf("handlers[%d]", i)
		if h.Name == "" {
			p.add(at+".name", "is empty")
		} else if names[h.Name] {
			p.add(at+".name", "handler %q is defined twice", h.Name)
		}
		names[h.Name] = true
		kind, ok := processor(h.Processor)
		if !ok {
			p.add(at+".processor", "unknown processor %q (known: %s)", h.Processor, strings.Join(Processors(), ", "))
		}
		c.checkTopic(p, at+".subscribe", h.Subscribe)
		if h.Group == "" {
			p.add(at+".group", "is empty")
		}
		key := [2]string{h.Group, h.Subscribe}
		if other, dup := subscriptions[key]; dup && h.IsEnabled() {
			p.add(at+".group", "handler %q already consumes %s in group %s: two handlers in one group would split the topic's partitions between them", other, h.Subscribe, h.Group)
		}
		if h.IsEnabled() {
			subscriptions[key] = h.Name
		}
		switch {
		case ok && kind.Fields != nil:
			// An aggregation counts lines; it moves no order's status.
			if h.Status != "" {
				p.add(at+".status", "processor %s records no status: remove it", h.Processor)
			}
			if h.Aggregate == nil {
				p.add(at+".aggregate", "processor %s needs an aggregate section: group_by, measures, emit, collection", h.Processor)
			} else {
				c.validateAggregate(p.at(at+".aggregate"), h, kind.Fields)
			}
		case !slices.Contains(Stages, h.Status):
			p.add(at+".status", "%q is not one of %v", h.Status, Stages)
		}
		if h.Aggregate != nil && (!ok || kind.Fields == nil) {
			p.add(at+".aggregate", "processor %s does not aggregate: remove this section", h.Processor)
		}
		// A line waiting out the grace must not be cut by the timeout: it
		// would be redelivered, never poisoned. A handler may look up two
		// ids, each with its grace.
		grace := c.Metadata.UnknownReferenceGrace.Duration
		for _, m := range c.StackFor(h) {
			if m.Timeout != nil && m.Timeout.Duration.Duration > 0 && m.Timeout.Duration.Duration <= 2*grace {
				p.add(at+".middleware", "handler %q: its timeout (%v) must be over twice metadata.unknown_reference_grace (%v); raise the timeout or lower the grace",
					h.Name, m.Timeout.Duration.Duration, grace)
			}
		}
		if ok {
			switch {
			case len(kind.Routes) > 0:
				if h.Publish != "" {
					p.add(at+".publish", "processor %s publishes by route: use routes", h.Processor)
				}
				for _, r := range kind.Routes {
					if h.Routes[r] == "" {
						p.add(at+".routes", "route %q needs a topic", r)
					} else {
						c.checkTopic(p, at+".routes."+r, h.Routes[r])
					}
				}
				for r := range h.Routes {
					if !slices.Contains(kind.Routes, r) {
						p.add(at+".routes."+r, "processor %s has no route %q", h.Processor, r)
					}
				}
			case kind.Publishes:
				c.checkTopic(p, at+".publish", h.Publish)
				if len(h.Routes) > 0 {
					p.add(at+".routes", "processor %s has one output: give it publish, not routes", h.Processor)
				}
			default:
				if h.Publish != "" || len(h.Routes) > 0 {
					p.add(at+".publish", "processor %s does not publish", h.Processor)
				}
			}
		}
		if h.Middleware != nil {
			c.validateStack(p, at+".middleware", h.Middleware)
		}
		if why := holdsForever(c.StackFor(h)); why != "" && !h.RedeliverForever {
			key := at + ".middleware"
			if h.Middleware == nil {
				key = "middleware"
			}
			p.add(key, "handler %q: %s, so a line that keeps failing is redelivered without end and its order never moves; add poison_queue with after_retries: true, or set redeliver_forever: true on the handler to mean it", h.Name, why)
		}
		if ok && kind.Fields != nil && h.IsEnabled() && c.Kafka.Client == "watermill-kafka" {
			p.add(at+".processor", "the %s processor keeps its state per partition and must know when a partition leaves this process, which only the franz client tells: use kafka.client franz, or disable this handler", h.Processor)
		}
		if h.Processor == "deliver" && h.IsEnabled() {
			c.validateDeliver(p, at, h)
		}
	}
}

// validateDeliver checks that the delivery stage's timeouts agree with each
// other and with the subscriber's.
func (c *Config) validateDeliver(p *problems, at string, h HandlerConfig) {
	if c.Kafka.Client == "watermill-kafka" {
		p.add(at+".processor", "the deliver processor holds an order's lines until all have arrived, which needs several messages of a partition in flight: use kafka.client franz, or disable this handler")
	}
	d := c.Delivery
	// A partition taken away waits drain_timeout for the deliveries under
	// way; one that outlasted it would be delivered again by the next owner.
	if c.Kafka.DrainTimeout.Duration <= d.DeliverTimeout.Duration {
		p.add("delivery.deliver_timeout", "%v must be shorter than kafka.drain_timeout (%v): a rebalance during a longer delivery delivers the order again from its next owner",
			d.DeliverTimeout.Duration, c.Kafka.DrainTimeout.Duration)
	}
	// A line that waits its assembly timeout, then for a delivery, must not
	// be cut by the handler's timeout first: it would be redelivered, and
	// never reported as the missing line it is.
	for _, m := range c.StackFor(h) {
		if need := d.AssemblyTimeout.Duration + d.DeliverTimeout.Duration; m.Timeout != nil && m.Timeout.Duration.Duration > 0 && m.Timeout.Duration.Duration <= need {
			p.add(at+".middleware", "handler %q: its timeout (%v) must be over delivery.assembly_timeout plus delivery.deliver_timeout (%v)", h.Name, m.Timeout.Duration.Duration, need)
		}
	}
}

func (c *Config) validateAggregate(p *problems, h HandlerConfig, fields map[string]string) {
	a := h.Aggregate
	a.validate(p, fields)
	if a.Repartition != "" {
		c.checkTopic(p, "repartition", a.Repartition)
		if a.Repartition == h.Subscribe || a.Repartition == h.Publish {
			p.add("repartition", "must be a topic of its own, not the handler's input or output")
		}
	}
	if a.Window != nil && a.Window.Topic != "" {
		c.checkTopic(p, "window.topic", a.Window.Topic)
	}
}

// RepartitionGroup is the consumer group of the second hop of an
// aggregation that repartitions: the handler's group reads its input and
// publishes it keyed by the group; this one reads it back and counts.
func (h HandlerConfig) RepartitionGroup() string { return h.Group + "_by_" + h.Aggregate.GroupBy }

// RepartitionName is the router handler name of the first hop.
func (h HandlerConfig) RepartitionName() string { return h.Name + ".repartition" }
