package config

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// AggregateConfig configures a handler whose processor is aggregate: a
// streaming aggregation of the lines of its input, kept exact under
// redelivery (see package aggregate).
type AggregateConfig struct {
	// GroupBy names the line field the lines are grouped by.
	GroupBy string `yaml:"group_by"`
	// Carry names text fields copied from a group's lines into its result
	// (to_location_name beside to_location).
	Carry []string `yaml:"carry"`
	// Measures are what is computed for each group.
	Measures []MeasureConfig `yaml:"measures"`
	// Emit is when a group's result is published and written:
	//   complete: once, when every line of the order has been counted
	//     (group_by order_id only); an order still incomplete after
	//     allowed_lateness is written with complete: false.
	//   changes: the running result, at most once per emit_interval per
	//     group, when it changed (the original system's update mode).
	Emit         string   `yaml:"emit"`
	EmitInterval Duration `yaml:"emit_interval"`
	// Collection is the MongoDB collection of the current results, one
	// document per group.
	Collection string `yaml:"collection"`
	// Repartition is the topic, keyed by the group, that lines go through
	// first when group_by is not the key of the input (the order id): each
	// group then has one owner, whose result is the whole total.
	Repartition string `yaml:"repartition"`
	// Window adds tumbling windows by the lines' own time.
	Window *WindowConfig `yaml:"window"`
	// AllowedLateness is how far behind the newest line of its partition
	// (by the lines' time) a line may be and still count. An older one is
	// not counted: it goes to the poison queue as late.
	AllowedLateness Duration `yaml:"allowed_lateness"`
	// FlushInterval and MaxPending say how often the state is written: a
	// line is acknowledged once the state that counts it is in MongoDB.
	FlushInterval Duration `yaml:"flush_interval"`
	MaxPending    int      `yaml:"max_pending"`
}

// MeasureConfig is one measure of an aggregation.
type MeasureConfig struct {
	// Name is the output field.
	Name string `yaml:"name"`
	// Op is sum or count.
	Op string `yaml:"op"`
	// Field is the line field summed (sum only).
	Field string `yaml:"field"`
	// Decimals is the precision of a sum: values are summed as integers of
	// 10^-decimals (cents for 2), so a sum is exact.
	Decimals int `yaml:"decimals"`
	// Max bounds a summed value: a line over it goes to the poison queue.
	Max float64 `yaml:"max"`
}

// WindowConfig configures tumbling windows by event time.
type WindowConfig struct {
	Size Duration `yaml:"size"`
	// Topic receives each window's result once it closes (its end is more
	// than allowed_lateness behind the newest line).
	Topic string `yaml:"topic"`
	// Collection holds the closed windows, one document per group and
	// window.
	Collection string `yaml:"collection"`
}

// Aggregate emit modes.
const (
	EmitComplete = "complete"
	EmitChanges  = "changes"
)

// Aggregate measure operations.
const (
	OpSum   = "sum"
	OpCount = "count"
)

// PartitionKeyField is the line field every topic of the pipeline is keyed
// by: all lines of an order are on one partition.
const PartitionKeyField = "order_id"

func (a *AggregateConfig) setDefaults() {
	defStr(&a.Emit, EmitChanges)
	defDur(&a.EmitInterval, time.Second)
	defDur(&a.AllowedLateness, time.Minute)
	defDur(&a.FlushInterval, 200*time.Millisecond)
	defInt(&a.MaxPending, 512)
	for i := range a.Measures {
		if a.Measures[i].Op == OpSum && a.Measures[i].Decimals == 0 {
			a.Measures[i].Decimals = 2
		}
	}
}

// validate checks the aggregation against the line fields its processor
// declares (fields: name → "number" or "text").
func (a *AggregateConfig) validate(p *problems, fields map[string]string) {
	fieldOK := func(key, name, want string) {
		kind, ok := fields[name]
		switch {
		case name == "":
			p.add(key, "no field given")
		case !ok:
			p.add(key, "lines have no field %q (they have: %s)", name, fieldList(fields, ""))
		case want != "" && kind != want:
			p.add(key, "field %q is %s, not a number (number fields: %s)", name, kind, fieldList(fields, "number"))
		}
	}
	fieldOK("group_by", a.GroupBy, "")
	for i, c := range a.Carry {
		fieldOK(fmt.Sprintf("carry[%d]", i), c, "")
	}
	if len(a.Measures) == 0 {
		p.add("measures", "no measure: give at least one, such as {name: lines, op: count}")
	}
	names := map[string]bool{a.GroupBy: true}
	for _, c := range a.Carry {
		names[c] = true
	}
	for i, m := range a.Measures {
		at := p.at(fmt.Sprintf("measures[%d]", i))
		switch {
		case m.Name == "":
			at.add("name", "is empty: it is the output field")
		case names[m.Name] || slices.Contains(reservedResultFields, m.Name):
			at.add("name", "%q is already a field of the result", m.Name)
		}
		names[m.Name] = true
		switch m.Op {
		case OpSum:
			fieldOK(fmt.Sprintf("measures[%d].field", i), m.Field, "number")
			if m.Decimals < 0 || m.Decimals > 6 {
				at.add("decimals", "%d is outside 0..6", m.Decimals)
			}
			if m.Max < 0 || math.IsNaN(m.Max) || math.IsInf(m.Max, 0) {
				at.add("max", "must be a positive number, or 0 for no bound")
			}
		case OpCount:
			if m.Field != "" {
				at.add("field", "a count counts lines: it takes no field")
			}
		default:
			at.add("op", "%q is not %s or %s", m.Op, OpSum, OpCount)
		}
	}
	switch a.Emit {
	case EmitComplete:
		if a.GroupBy != PartitionKeyField {
			p.add("emit", "complete needs group_by %s: only an order's lines carry their count", PartitionKeyField)
		}
	case EmitChanges:
		if a.EmitInterval.Duration <= 0 {
			p.add("emit_interval", "must be positive")
		}
	default:
		p.add("emit", "%q is not %s or %s", a.Emit, EmitComplete, EmitChanges)
	}
	if a.Collection == "" {
		p.add("collection", "is empty: it holds the current results")
	}
	if a.GroupBy != PartitionKeyField && a.GroupBy != "" && a.Repartition == "" {
		p.add("repartition", "group_by %s is not the key of the input (%s): name a topic keyed by the group, so that each group has one owner", a.GroupBy, PartitionKeyField)
	}
	if a.GroupBy == PartitionKeyField && a.Repartition != "" {
		p.add("repartition", "group_by %s is already the key of the input: no repartition is needed", a.GroupBy)
	}
	if w := a.Window; w != nil {
		if w.Size.Duration < time.Second {
			p.add("window.size", "must be at least 1s")
		}
		if w.Collection == "" {
			p.add("window.collection", "is empty: it holds the closed windows")
		}
	}
	for key, d := range map[string]Duration{"allowed_lateness": a.AllowedLateness, "flush_interval": a.FlushInterval} {
		if d.Duration <= 0 {
			p.add(key, "must be positive")
		}
	}
	if a.MaxPending <= 0 {
		p.add("max_pending", "must be positive")
	}
}

// reservedResultFields are written in every result document.
var reservedResultFields = []string{"_id", "time", "complete", "window_start", "window_end", "line_ids"}

func fieldList(fields map[string]string, kind string) string {
	var out []string
	for n, k := range fields {
		if kind == "" || k == kind {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}
