package app

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/order"
)

// addAggregate wires an aggregating handler: its Aggregator, run beside the
// router, and the router handler that feeds it. A handler grouping by a
// field other than the order id gets a first hop that publishes each line
// to the repartition topic keyed by its group, so that each group has one
// owner at a time and its result is one total (see package aggregate).
func (p *Pipeline) addAggregate(h config.HandlerConfig, deps handlers.Deps) error {
	a := h.Aggregate
	agg := aggregate.New(aggregate.Config{
		Name: h.Name, Aggregate: *a, Topic: h.Publish, DB: p.mongo.DB, Emitter: emitter{p.pub},
		WriteTimeout: p.cfg.Status.WriteTimeout.Duration, Logger: p.log, OnFlush: p.metrics.OnAggregateFlush,
	})
	deps.Handler = h
	deps.Counter = func(config.HandlerConfig) (handlers.Counter, error) { return agg, nil }
	proc, err := handlers.Registry[h.Processor].New(deps)
	if err != nil {
		return err
	}
	counting := h
	if a.Repartition != "" {
		sub, err := p.kafka.NewSubscriber(h.Group)
		if err != nil {
			return err
		}
		p.subs = append(p.subs, sub)
		hop := p.router.AddHandler(h.RepartitionName(), h.Subscribe, sub, a.Repartition, keepOpen{p.pub}, repartition(a.GroupBy))
		if err := p.addMiddleware(hop, h); err != nil {
			return err
		}
		counting.Subscribe, counting.Group = a.Repartition, h.RepartitionGroup()
	}
	sub, err := p.kafka.NewSubscriber(counting.Group)
	if err != nil {
		return err
	}
	p.subs = append(p.subs, sub)
	st := &stage{name: h.Name, subscribe: counting.Subscribe, proc: proc, writer: p.recorder, log: p.log.With("handler", h.Name)}
	handler := p.router.AddConsumerHandler(h.Name, counting.Subscribe, sub, func(msg *message.Message) error {
		_, err := st.handle(msg)
		return err
	})
	if err := p.addMiddleware(handler, counting); err != nil {
		return err
	}
	p.aggregators = append(p.aggregators, agg)
	p.handlers = append(p.handlers, h.Name)
	return nil
}

// repartition is the first hop of an aggregation by a field other than the
// order id: it publishes each line unchanged, keyed by its group.
func repartition(field string) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		line, err := order.DecodeLine(msg.Payload)
		if err != nil {
			return nil, failure.Permanent(failure.InvalidInput, err)
		}
		out := message.NewMessage(uuid.NewString(), msg.Payload)
		out.SetContext(kafkaclient.CarryHop(context.Background(), msg))
		out.Metadata.Set(kafkaclient.KeyMetadata, aggregate.GroupKey(field, line))
		return []*message.Message{out}, nil
	}
}

// emitter publishes an aggregation's results, each keyed by its group.
type emitter struct{ pub message.Publisher }

// Emit publishes the records to topic, each keyed by its group.
func (e emitter) Emit(topic string, recs []aggregate.Record) error {
	msgs := make([]*message.Message, len(recs))
	for i, r := range recs {
		msgs[i] = message.NewMessage(uuid.NewString(), r.Payload)
		msgs[i].Metadata.Set(kafkaclient.KeyMetadata, r.Key)
	}
	if err := e.pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}
