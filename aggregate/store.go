package aggregate

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/order"
)

// Collections of every aggregation's bookkeeping.
const (
	// CheckpointCollection holds the checkpoints: each one a partition's
	// state with the lines it counted since the one before.
	CheckpointCollection = "aggregate_checkpoints"
	// RollupCollection holds each partition's rollup, one document per
	// aggregation and partition.
	RollupCollection = "aggregate_rollups"
)

// updateChunk bounds the updates of one command: FerretDB holds a
// connection per matched statement until the command ends.
const updateChunk = 10

// flushDoc is one document of CheckpointCollection: the checkpoints of
// every partition one flush of one process wrote. A partition's state and
// the lines it counted are in one document, so they are written together
// or not at all: that is what makes a restart count nothing twice. One
// document per flush, not per partition, keeps the writes, the pruning
// deletes and the restore's read few.
type flushDoc struct {
	ID        string       `bson:"_id"`
	Aggregate string       `bson:"aggregate"`
	Written   time.Time    `bson:"written"`
	Parts     []checkpoint `bson:"parts"`
}

// checkpoint is one partition's part of a flushDoc.
type checkpoint struct {
	Partition int32 `bson:"partition"`
	// Seq orders a partition's checkpoints. Lineage names the run of
	// checkpoints of one owner; Base* is the checkpoint that run began
	// from, so that a restore reads one chain, never a mix of two owners'.
	Seq         int64  `bson:"seq"`
	Lineage     string `bson:"lineage"`
	BaseLineage string `bson:"base_lineage"`
	BaseSeq     int64  `bson:"base_seq"`
	// Offsets are the lowest and highest input offsets counted since the
	// previous checkpoint.
	FromOffset int64    `bson:"from_offset"`
	ToOffset   int64    `bson:"to_offset"`
	MaxTime    int64    `bson:"max_time"`
	State      Snapshot `bson:"state"`
	// Seen packs the ids and times of the lines counted (see packSeen):
	// a binary value costs the server nothing to decode on a restore's
	// scan, where an array of documents is decoded field by field.
	Seen    []byte `bson:"seen"`
	written time.Time
}

// packSeen packs lines as varints: order, line, time, each a delta from
// the line before.
func packSeen(lines []SeenLine) []byte {
	b := make([]byte, 0, len(lines)*8)
	var prev SeenLine
	for _, l := range lines {
		b = binary.AppendVarint(b, l.Order-prev.Order)
		b = binary.AppendVarint(b, l.Line-prev.Line)
		b = binary.AppendVarint(b, l.Time-prev.Time)
		prev = l
	}
	return b
}

// unpackSeen reverses packSeen.
func unpackSeen(b []byte) ([]SeenLine, error) {
	var out []SeenLine
	var prev SeenLine
	for len(b) > 0 {
		var d [3]int64
		for i := range d {
			v, n := binary.Varint(b)
			if n <= 0 {
				return nil, errors.New("checkpoint: seen lines are corrupt")
			}
			d[i], b = v, b[n:]
		}
		prev = SeenLine{LineID: LineID{Order: prev.Order + d[0], Line: prev.Line + d[1]}, Time: prev.Time + d[2]}
		out = append(out, prev)
	}
	return out, nil
}

// Store keeps an aggregation's checkpoints and results in MongoDB.
type Store struct {
	spec        *Spec
	checkpoints *mongo.Collection
	rollups     *mongo.Collection
	results     *mongo.Collection
	windows     *mongo.Collection // nil without windows

	// known are the checkpoints this process wrote or read, which it
	// prunes once no restore needs them; heads are the newest of each
	// partition it knows of.
	mu      sync.Mutex
	known   map[string][]knownCheckpoint // by flushDoc _id
	heads   map[int32]knownCheckpoint
	writer  string // names this process's flushDocs
	flushes int64
}

type knownCheckpoint struct {
	partition int32
	seq       int64
	maxTime   int64
}

// NewStore returns the store of an aggregation.
func NewStore(db *mongo.Database, spec *Spec, cfg config.AggregateConfig) *Store {
	s := &Store{spec: spec, checkpoints: db.Collection(CheckpointCollection), rollups: db.Collection(RollupCollection),
		results: db.Collection(cfg.Collection), known: map[string][]knownCheckpoint{}, heads: map[int32]knownCheckpoint{},
		writer: uuid.NewString()[:8]}
	if cfg.Window != nil {
		s.windows = db.Collection(cfg.Window.Collection)
	}
	return s
}

// chain is where a restored partition's checkpoints go on from.
type chain struct {
	lineage     string
	seq         int64
	baseLineage string
	baseSeq     int64
}

// restored is a partition's state as its checkpoints give it, and the
// chain its next checkpoints continue.
type restored struct {
	state *Partition
	chain chain
}

// restore reads the checkpoints of the partitions given, in one read (on
// FerretDB any read but one by _id scans the collection), and returns
// each one's state. A partition never checkpointed starts empty.
func (s *Store) restore(ctx context.Context, partitions []int32) (map[int32]restored, error) {
	cur, err := s.checkpoints.Find(ctx, bson.D{{Key: "aggregate", Value: s.spec.Name}})
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of %s partitions %v: %w", s.spec.Name, partitions, err)
	}
	var docs []flushDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read checkpoints of %s partitions %v: %w", s.spec.Name, partitions, err)
	}
	byPartition := map[int32][]checkpoint{}
	s.mu.Lock()
	for _, d := range docs {
		if _, ok := s.known[d.ID]; !ok {
			s.known[d.ID] = knownOf(d)
		}
		for _, c := range d.Parts {
			c.written = d.Written
			byPartition[c.Partition] = append(byPartition[c.Partition], c)
		}
	}
	s.mu.Unlock()
	out := map[int32]restored{}
	for _, p := range partitions {
		r, err := s.restoreChain(byPartition[p])
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.heads[p] = knownCheckpoint{partition: p, seq: r.chain.seq, maxTime: r.state.Watermark}
		s.mu.Unlock()
		out[p] = r
	}
	return out, nil
}

// restoreChain returns the state of the newest checkpoint, with the lines
// counted along its chain back through the runs it continued.
func (s *Store) restoreChain(docs []checkpoint) (restored, error) {
	next := chain{lineage: uuid.NewString()}
	if len(docs) == 0 {
		return restored{state: NewPartition(s.spec), chain: next}, nil
	}
	slices.SortFunc(docs, func(a, b checkpoint) int {
		if c := cmp.Compare(b.Seq, a.Seq); c != 0 {
			return c
		}
		return b.written.Compare(a.written)
	})
	head := docs[0]
	var seen []SeenLine
	lineage, upto := head.Lineage, head.Seq
	for lineage != "" {
		base, baseSeq := "", int64(0)
		for _, d := range docs {
			if d.Lineage == lineage && d.Seq <= upto {
				lines, err := unpackSeen(d.Seen)
				if err != nil {
					return restored{}, fmt.Errorf("restore %s partition %d: %w", s.spec.Name, d.Partition, err)
				}
				seen = append(seen, lines...)
				base, baseSeq = d.BaseLineage, d.BaseSeq
			}
		}
		if base == lineage {
			break
		}
		lineage, upto = base, baseSeq
	}
	next.seq = head.Seq
	next.baseLineage, next.baseSeq = head.Lineage, head.Seq
	return restored{state: Restore(s.spec, head.State, seen), chain: next}, nil
}

// pendingCheckpoint is a partition's checkpoint to write.
type pendingCheckpoint struct {
	partition int32
	chain     chain
	from, to  int64
	state     Snapshot
	seen      []SeenLine
}

func checkpointOf(c *pendingCheckpoint) checkpoint {
	return checkpoint{
		Partition: c.partition, Seq: c.chain.seq, Lineage: c.chain.lineage,
		BaseLineage: c.chain.baseLineage, BaseSeq: c.chain.baseSeq, FromOffset: c.from, ToOffset: c.to,
		MaxTime: c.state.Watermark, State: c.state, Seen: packSeen(c.seen),
	}
}

func knownOf(d flushDoc) []knownCheckpoint {
	out := make([]knownCheckpoint, len(d.Parts))
	for i, c := range d.Parts {
		out[i] = knownCheckpoint{partition: c.Partition, seq: c.Seq, maxTime: c.MaxTime}
	}
	return out
}

// writeResults writes the groups a flush finished (once each: a copy is
// refused by its _id), the windows it closed, and the running results that
// changed (absolute values, so a rewrite is harmless).
func (s *Store) writeResults(ctx context.Context, finished, closed, changed []Group) error {
	if len(finished) > 0 {
		docs := make([]any, len(finished))
		for i, g := range finished {
			docs[i] = s.resultDoc(g)
		}
		if err := insertOnce(ctx, s.results, docs); err != nil {
			return fmt.Errorf("write %d results of %s: %w", len(docs), s.spec.Name, err)
		}
	}
	if len(closed) > 0 && s.windows != nil {
		docs := make([]any, len(closed))
		for i, g := range closed {
			docs[i] = s.resultDoc(g)
		}
		if err := insertOnce(ctx, s.windows, docs); err != nil {
			return fmt.Errorf("write %d windows of %s: %w", len(docs), s.spec.Name, err)
		}
	}
	for chunk := range slices.Chunk(changed, updateChunk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, g := range chunk {
			doc := s.resultDoc(g)
			models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: doc[0].Value}}).SetReplacement(doc).SetUpsert(true)
		}
		if _, err := s.results.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
			return fmt.Errorf("write %d results of %s: %w", len(models), s.spec.Name, err)
		}
	}
	return nil
}

// writeCheckpoints inserts the checkpoints of a flush, one document.
func (s *Store) writeCheckpoints(ctx context.Context, cps []*pendingCheckpoint) error {
	s.mu.Lock()
	s.flushes++
	doc := flushDoc{ID: s.spec.Name + "/" + s.writer + "/" + strconv.FormatInt(s.flushes, 10), Aggregate: s.spec.Name,
		Written: time.Now().UTC().Truncate(time.Millisecond)}
	s.mu.Unlock()
	for _, c := range cps {
		doc.Parts = append(doc.Parts, checkpointOf(c))
	}
	if _, err := s.checkpoints.InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("write the checkpoints of %d partitions of %s: %w", len(cps), s.spec.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known[doc.ID] = knownOf(doc)
	for _, k := range s.known[doc.ID] {
		if k.seq >= s.heads[k.partition].seq {
			s.heads[k.partition] = k
		}
	}
	return nil
}

// writeRollups replaces the rollup documents of the partitions given.
func (s *Store) writeRollups(ctx context.Context, rollups map[int32]Rollup) error {
	parts := make([]int32, 0, len(rollups))
	for p := range rollups {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for chunk := range slices.Chunk(parts, updateChunk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, p := range chunk {
			id := s.spec.Name + "/" + strconv.Itoa(int(p))
			models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetUpsert(true).
				SetReplacement(bson.D{{Key: "_id", Value: id}, {Key: "aggregate", Value: s.spec.Name}, {Key: "partition", Value: p},
					{Key: "rollup", Value: rollups[p]}, {Key: "written", Value: time.Now().UTC()}})
		}
		if _, err := s.rollups.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(true)); err != nil {
			return fmt.Errorf("write rollups of %s: %w", s.spec.Name, err)
		}
	}
	return nil
}

// pruneBatch bounds the deletes of one prune: each is one statement of a
// command of at most updateChunk.
const pruneBatch = 200

// prune deletes, by _id, the flush documents this process knows that no
// restore reads any more: each of their checkpoints older than the newest
// of its partition this process knows of, with every line older than that
// one's allowed lateness. The newest checkpoint of a partition is never
// deleted. It returns how many documents went.
func (s *Store) prune(ctx context.Context) (int, error) {
	lateness := s.spec.Lateness.Microseconds() + (&Partition{spec: s.spec}).bucketWidth()
	s.mu.Lock()
	var ids []string
	for id, parts := range s.known {
		stale := true
		for _, k := range parts {
			h, ok := s.heads[k.partition]
			if !ok || k.seq >= h.seq || k.maxTime >= h.maxTime-lateness {
				stale = false
				break
			}
		}
		if stale {
			ids = append(ids, id)
			if len(ids) == pruneBatch {
				break
			}
		}
	}
	s.mu.Unlock()
	deleted := 0
	for chunk := range slices.Chunk(ids, updateChunk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, id := range chunk {
			models[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}})
		}
		if _, err := s.checkpoints.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return deleted, fmt.Errorf("prune checkpoints of %s: %w", s.spec.Name, err)
		}
		s.mu.Lock()
		for _, id := range chunk {
			delete(s.known, id)
		}
		s.mu.Unlock()
		deleted += len(chunk)
	}
	return deleted, nil
}

// resultDoc is a group's result document: its key (typed as the line
// field), the carried fields, each measure (a sum as a number and exactly,
// in units: total_amount and total_amount_cents), the time of its newest
// line, and for complete emission the lines counted.
func (s *Store) resultDoc(g Group) bson.D {
	id := g.Key
	if g.Window != 0 {
		id += "|" + formatTime(g.Window)
	}
	doc := bson.D{{Key: "_id", Value: id}}
	for _, kv := range resultFields(s.spec, g) {
		doc = append(doc, bson.E{Key: kv.name, Value: kv.value})
	}
	return doc
}

type field struct {
	name  string
	value any
}

// resultFields are a group's result, in order: the document and the
// published record carry the same fields.
func resultFields(spec *Spec, g Group) []field {
	var out []field
	if _, ok := integerFields[spec.GroupBy]; ok {
		n, _ := strconv.ParseInt(g.Key, 10, 64)
		out = append(out, field{spec.GroupBy, n})
	} else {
		out = append(out, field{spec.GroupBy, g.Key})
	}
	for _, c := range spec.Carry {
		out = append(out, field{c, g.Carry[c]})
	}
	for i, m := range spec.Measures {
		if m.Op == config.OpCount {
			out = append(out, field{m.Name, g.Values[i]})
			continue
		}
		out = append(out, field{m.Name, Units(g.Values[i], m.Decimals)}, field{m.Name + unitSuffix(m.Decimals), g.Values[i]})
	}
	if spec.Complete && g.Window == 0 {
		out = append(out, field{"complete", g.Complete}, field{"line_ids", slices.Sorted(slices.Values(g.Lines))})
	}
	if g.Window != 0 {
		out = append(out, field{"window_start", formatTime(g.Window)}, field{"window_end", formatTime(g.Window + spec.Window.Microseconds())})
	}
	out = append(out, field{"time", formatTime(g.Time)})
	return out
}

// Units returns a sum kept in units of 10^-decimals as a number: the
// float64 nearest the exact decimal, which prints as that decimal
// (857.6, not 857.5999999999999).
func Units(units int64, decimals int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatInt(units, 10)+"e-"+strconv.Itoa(decimals), 64)
	if math.IsInf(v, 0) {
		return float64(units) / math.Pow10(decimals)
	}
	return v
}

// unitSuffix names the exact form of a sum: total_amount_cents.
func unitSuffix(decimals int) string {
	switch decimals {
	case 0:
		return "_units"
	case 2:
		return "_cents"
	}
	return "_e" + strconv.Itoa(decimals)
}

func formatTime(micros int64) string {
	return time.UnixMicro(micros).UTC().Format(order.TimeLayout)
}

// insertOnce inserts documents whose _id may already be there (written
// before a restart): those are kept, the rest inserted.
func insertOnce(ctx context.Context, coll *mongo.Collection, docs []any) error {
	_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 {
				return err
			}
		}
		return nil
	}
	return err
}
