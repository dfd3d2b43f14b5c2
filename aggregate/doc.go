// Package aggregate is orderflow's streaming aggregations: sums and counts
// of order lines per group (an order, a destination), emitted when an
// order is complete or, for a running count, at most once per interval
// when it changed, with tumbling windows by the lines' own time.
//
// Results are exact whatever Kafka redelivers:
//
//   - A Partition (state.go, pure logic) counts a line once: every copy of
//     a line has the same id (order, line index), and the ids counted are
//     kept for the allowed lateness. A line older than that behind the
//     newest line of its partition cannot be told from a copy any more and
//     is refused as late, never counted twice.
//   - The Aggregator acknowledges a line only once the state that counts
//     it is in MongoDB (store.go): one checkpoint document per partition
//     and flush, holding the state, the input offsets and the ids of the
//     lines counted since the checkpoint before. One document is written
//     whole or not at all, so after a crash the newest checkpoint restores
//     a state and exactly the ids it counted, and what came after is
//     counted again.
//   - Results are written before the checkpoint covering them, each once
//     (a finished order, refused by its _id if there) or as an absolute
//     value (a running count), so a result written twice is the same.
//
// Grouping by a field other than the input's key (the order id) goes
// through a repartition topic keyed by the group (app wires that hop), so
// that each group has one owner at a time and its result is the whole
// total. Merging per-partition partial results instead would make every
// flush read back the partials of the groups it changed, and on FerretDB a
// read of anything but one _id scans its collection.
package aggregate
