// Package config is orderflow's configuration: the schema (one struct per
// section, each with its setDefaults and Validate, in Watermill's style),
// loading from YAML with line-numbered errors, the ORDERFLOW_ environment
// overlay, secret masking, and the topology the handlers form. It imports
// nothing of the pipeline: the processors a handler may name register
// themselves (RegisterProcessor, from the handlers package).
package config

import "errors"

// Config is the whole configuration of orderflow: the servers, the topics,
// the handlers and their middleware. It is read from a YAML file (see
// orderflow.yaml) with environment variables on top; see Load.
type Config struct {
	Kafka      KafkaConfig            `yaml:"kafka"`
	MongoDB    MongoConfig            `yaml:"mongodb"`
	Metadata   MetadataConfig         `yaml:"metadata"`
	Status     StatusConfig           `yaml:"status"`
	Router     RouterConfig           `yaml:"router"`
	HTTP       HTTPConfig             `yaml:"http"`
	Log        LogConfig              `yaml:"log"`
	Tracing    TracingConfig          `yaml:"tracing"`
	Generator  GeneratorConfig        `yaml:"generator"`
	Topics     map[string]TopicConfig `yaml:"topics"`
	Middleware []Middleware           `yaml:"middleware"`
	Handlers   []HandlerConfig        `yaml:"handlers"`
	Delivery   DeliveryConfig         `yaml:"delivery"`

	// envNames are the variables that override a setting (see EnvNames).
	envNames []string
}

// setDefaults fills in what the file left out. Defaults reproduce the
// pipeline of the original design.
func (c *Config) setDefaults() {
	c.Kafka.setDefaults()
	c.MongoDB.setDefaults()
	c.Metadata.setDefaults()
	c.Status.setDefaults()
	c.Router.setDefaults()
	c.HTTP.setDefaults()
	c.Log.setDefaults()
	c.Tracing.setDefaults()
	c.Generator.setDefaults()
	c.Delivery.setDefaults()
	for i := range c.Handlers {
		if a := c.Handlers[i].Aggregate; a != nil {
			a.setDefaults()
		}
	}
	for name, t := range c.Topics {
		defInt(&t.Partitions, 8)
		c.Topics[name] = t
	}
	for _, stack := range c.stacks() {
		for i := range *stack {
			(*stack)[i].setDefaults()
		}
	}
}

// stacks returns the default middleware stack and every handler's own.
func (c *Config) stacks() []*[]Middleware {
	out := []*[]Middleware{&c.Middleware}
	for i := range c.Handlers {
		if c.Handlers[i].Middleware != nil {
			out = append(out, &c.Handlers[i].Middleware)
		}
	}
	return out
}

// PoisonTopic is the topic of the default stack's poison queue, or of the
// first handler stack that has one.
func (c *Config) PoisonTopic() string {
	for _, stack := range c.stacks() {
		for _, m := range *stack {
			if m.Poison != nil {
				return m.Poison.Topic
			}
		}
	}
	return "poison_queue"
}

// StackFor returns the middleware stack of a handler.
func (c *Config) StackFor(h HandlerConfig) []Middleware {
	if h.Middleware != nil {
		return h.Middleware
	}
	return c.Middleware
}

// Validate checks the configuration. It reports every problem, not just the
// first, each naming its key; Load adds the file and line.
func (c *Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err(nil, "")
}

func (c *Config) validate(p *problems) {
	walkDurations(c, func(path string, d Duration) {
		if d.err != nil {
			p.add(path, "%q is not a duration (write it like 500ms, 10s or 1m30s)", d.raw)
		} else if d.Duration < 0 {
			p.add(path, "must not be negative")
		}
	})
	c.Kafka.validate(p.at("kafka"))
	c.MongoDB.validate(p.at("mongodb"))
	c.Metadata.validate(p.at("metadata"))
	c.HTTP.validate(p.at("http"))
	c.Router.validate(p.at("router"))
	c.Status.validate(p.at("status"))
	c.Log.validate(p.at("log"))
	c.Tracing.validate(p.at("tracing"))
	c.Generator.validate(p.at("generator"))
	c.checkTopic(p, "generator.topic", c.Generator.Topic)
	for name, t := range c.Topics {
		if t.Partitions < 1 {
			p.add("topics."+name+".partitions", "must be at least 1")
		}
	}
	c.validateStack(p, "middleware", c.Middleware)
	c.validateHandlers(p)
	c.Topology().check(p)
	c.Delivery.validate(p.at("delivery"))
}

// ErrNoBrokers is the error of a command that needs Kafka when none is
// configured.
var ErrNoBrokers = errors.New("no Kafka brokers configured: set kafka.brokers, ORDERFLOW_KAFKA_BROKERS or --brokers (or run `orderflow demo` for an embedded stack)")

// ErrNoMongo is the error of a command that needs MongoDB when none is
// configured.
var ErrNoMongo = errors.New("no MongoDB configured: set mongodb.uri, ORDERFLOW_MONGODB_URI or --mongodb-uri (or run `orderflow demo` for an embedded stack)")

// DeliveryEnabled says whether external lines go on to a delivery stage (an
// enabled handler of the deliver processor), which decides when an order
// with external lines is final.
func (c *Config) DeliveryEnabled() bool {
	for _, h := range c.Handlers {
		if h.Processor == "deliver" && h.IsEnabled() {
			return true
		}
	}
	return false
}
