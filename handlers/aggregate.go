package handlers

import (
	"context"
	"errors"

	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/order"
)

// Counter counts a line into an aggregation and returns once the count is
// durable; *aggregate.Aggregator is one.
type Counter interface {
	Add(ctx context.Context, partition int32, offset int64, claim context.Context, line order.Line) error
}

// Aggregate counts each line into an aggregation (package aggregate holds
// the logic). The line's partition and offset come from its context, where
// the franz subscriber put them; the line goes nowhere after, and moves no
// order's status.
func Aggregate(c Counter) Processor {
	return func(ctx context.Context, line order.Line) (Outcome, error) {
		pos, ok := kafkapubsub.PositionFromCtx(ctx)
		if !ok {
			return Outcome{}, errors.New("aggregate: the line has no Kafka position (it needs kafka.client franz)")
		}
		if err := c.Add(ctx, pos.Partition, pos.Offset, pos.Claim, line); err != nil {
			return Outcome{}, err
		}
		return Outcome{Settled: true}, nil
	}
}
