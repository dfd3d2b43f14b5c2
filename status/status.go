// Package status keeps the status of every order: a record for each line at
// each stage, written in batches after the line's publish succeeded, and the
// order statuses derived from those records.
//
// The records are the truth and are only ever inserted. An order's status is
// computed from the set of its records, never stored, so redelivered,
// concurrent or out-of-order writes cannot move it backwards, count a line
// twice or lose a transition: adding a record can only move an order forward.
package status

import (
	"context"
	"time"
)

// Status is the status of a line or an order.
type Status string

// The statuses, in pipeline order, then the terminal ones.
const (
	Pending   Status = "pending" // not every line has been generated yet
	Generated Status = "generated"
	Validated Status = "validated"
	Enriched  Status = "enriched"
	Routed    Status = "routed"
	Delivered Status = "delivered"
	Rejected  Status = "rejected"
	Failed    Status = "failed"
)

// Stages are the statuses a line passes through, in order.
var Stages = []Status{Generated, Validated, Enriched, Routed, Delivered}

// All lists every status an order can have, for reports.
var All = []Status{Pending, Generated, Validated, Enriched, Routed, Delivered, Rejected, Failed}

// Rank orders the stages: 1 for generated up to 5 for delivered, 0 for the
// others.
func (s Status) Rank() int {
	for i, st := range Stages {
		if st == s {
			return i + 1
		}
	}
	return 0
}

// IsStage reports whether s is one of Stages, the statuses a handler may
// record on success.
func (s Status) IsStage() bool { return s.Rank() > 0 }

// Record is one line passing, or failing, one stage.
type Record struct {
	OrderID int64
	// Line is the index of the line in its order, or -1 when the line could
	// not be decoded and only its order id (the Kafka key) is known.
	Line  int
	Lines int
	// Status is the stage reached, or Rejected or Failed.
	Status Status
	// Stage is, for a failed record, the stage the line failed to reach.
	Stage   Status
	Time    time.Time
	Handler string
	// Topic, Partition and Offset locate the message the line was read from;
	// for generated lines, the topic it was published to.
	Topic     string
	Partition int32
	Offset    int64
	// Output is the topic the line was published to, and Route the route
	// (internal or external) for routed lines.
	Output string
	Route  string
	// Reason says why a line was rejected or failed.
	Reason string
	// Partner and Detail describe a delivery: the partner, and the file path
	// or HTTP status that confirmed it.
	Partner string
	Detail  string
	// Generated is when the line's order was created (its time field), for
	// latency metrics; it is not stored.
	Generated time.Time
	// Expect is, for a delivered record, how many external lines the order
	// has, so that the order_status view knows when all are delivered; it
	// is not stored.
	Expect int
}

// Writer records status records durably; Record returns once they are.
type Writer interface {
	Record(ctx context.Context, recs ...Record) error
}

// LineRef identifies the line a message carries and where it was read from.
// Handlers attach it to the messages they produce, and the status publisher
// reads it back to know what to record.
type LineRef struct {
	OrderID int64
	Line    int
	Lines   int
	// Stage is the status the handler records on success.
	Stage     Status
	Handler   string
	Topic     string
	Partition int32
	Offset    int64
	Route     string
	// Generated is the order's time, for latency metrics.
	Generated time.Time
}

type lineRefKey struct{}

// WithLine returns ctx carrying ref.
func WithLine(ctx context.Context, ref LineRef) context.Context {
	return context.WithValue(ctx, lineRefKey{}, ref)
}

// LineFrom returns the LineRef of ctx.
func LineFrom(ctx context.Context) (LineRef, bool) {
	ref, ok := ctx.Value(lineRefKey{}).(LineRef)
	return ref, ok
}

// Record returns the record of ref reaching status, now.
func (ref LineRef) Record(status Status) Record {
	return Record{
		OrderID: ref.OrderID, Line: ref.Line, Lines: ref.Lines,
		Status: status, Stage: ref.Stage, Time: time.Now(), Handler: ref.Handler,
		Topic: ref.Topic, Partition: ref.Partition, Offset: ref.Offset, Route: ref.Route,
		Generated: ref.Generated,
	}
}
