package status

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// CountsCollection holds the counters of the view, so that the summary reads
// a few small documents instead of folding the history: one document per
// writing process (a View), which counts the view documents it inserted.
//
// Every view document is inserted once, by exactly one writer (its _id is
// unique), so the sum over writers counts each once. A writer first records
// its intent (the documents it is about to insert, under a batch id that the
// documents carry in `write_id`), then inserts, then adds what it inserted to
// its counters and clears the intent in one single-document update. A writer
// killed between the insert and the update leaves its intent behind; any
// View finds it (see recoverCounts) and counts the documents that carry its
// batch id, under the same condition, so nothing is counted twice or lost.
const CountsCollection = "order_status_counts"

// OpenCollection lists the orders that entered the view and are not final
// yet, `{_id: "<order>", order_id, since}`, so that /stuck reads what is in
// flight, not the history. An order enters it before its first view
// document is inserted and leaves it after its final one; the View removes
// the entries of final orders left behind by a crash (see healOpen).
const OpenCollection = "order_status_open"

// viewCounts are the counters of one writer, as stored.
type viewCounts struct {
	// Reached counts the orders that reached each status, and Lines their
	// lines.
	Reached map[string]int64 `bson:"reached,omitempty"`
	Lines   map[string]int64 `bson:"lines,omitempty"`
	// EndedAfter counts the orders rejected or failed, by the rank of the
	// last stage they reached ("0" for none).
	EndedAfter map[string]int64 `bson:"ended_after,omitempty"`
	// RoutedExternal counts the routed orders with external lines: they
	// are final only once delivered, when delivery is enabled.
	RoutedExternal int64 `bson:"routed_external,omitempty"`
}

func (c *viewCounts) add(o viewCounts) {
	addMap := func(dst *map[string]int64, src map[string]int64) {
		if *dst == nil {
			*dst = map[string]int64{}
		}
		for k, n := range src {
			(*dst)[k] += n
		}
	}
	addMap(&c.Reached, o.Reached)
	addMap(&c.Lines, o.Lines)
	addMap(&c.EndedAfter, o.EndedAfter)
	c.RoutedExternal += o.RoutedExternal
}

// contribution is what inserting one view document adds to the counters.
type contribution struct {
	id       string
	status   Status
	lines    int
	after    int  // for rejected and failed: the rank of the last stage reached
	external bool // for routed: the order has external lines
}

// encode packs c into the intent, as "id|lines|after|external".
func (c contribution) encode() string {
	ext := "0"
	if c.external {
		ext = "1"
	}
	return c.id + "|" + strconv.Itoa(c.lines) + "|" + strconv.Itoa(c.after) + "|" + ext
}

func decodeContribution(s string) (contribution, error) {
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return contribution{}, fmt.Errorf("view intent entry %q: want 4 fields", s)
	}
	lines, err1 := strconv.Atoi(f[1])
	after, err2 := strconv.Atoi(f[2])
	i := strings.LastIndexByte(f[0], '-')
	if err := errors.Join(err1, err2); err != nil || i < 0 {
		return contribution{}, fmt.Errorf("view intent entry %q is malformed", s)
	}
	return contribution{id: f[0], status: Status(f[0][i+1:]), lines: lines, after: after, external: f[3] == "1"}, nil
}

func (c viewCounts) with(cs ...contribution) viewCounts {
	for _, x := range cs {
		if c.Reached == nil {
			c.Reached, c.Lines, c.EndedAfter = map[string]int64{}, map[string]int64{}, map[string]int64{}
		}
		c.Reached[string(x.status)]++
		c.Lines[string(x.status)] += int64(x.lines)
		switch x.status {
		case Rejected, Failed:
			c.EndedAfter[strconv.Itoa(x.after)]++
		case Routed:
			if x.external {
				c.RoutedExternal++
			}
		}
	}
	return c
}

// inc is the $inc of c, by dotted field names.
func (c viewCounts) inc() bson.D {
	var d bson.D
	for _, m := range []struct {
		name string
		v    map[string]int64
	}{{"reached", c.Reached}, {"lines", c.Lines}, {"ended_after", c.EndedAfter}} {
		for k, n := range m.v {
			d = append(d, bson.E{Key: m.name + "." + k, Value: n})
		}
	}
	if c.RoutedExternal != 0 {
		d = append(d, bson.E{Key: "routed_external", Value: c.RoutedExternal})
	}
	return d
}

// intent is a write in progress, kept in the writer's document under
// pending.<batch>.
type intent struct {
	Docs []string  `bson:"docs"`
	At   time.Time `bson:"at"`
}

func newBatchID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeCounted inserts docs (all carrying batch as write_id) under an
// intent, then counts those it inserted.
func (v *View) writeCounted(ctx context.Context, batch string, docs []ViewEntry, cs []contribution) error {
	enc := make([]string, len(cs))
	for i, c := range cs {
		enc[i] = c.encode()
	}
	_, err := v.counts.UpdateOne(ctx, bson.D{{Key: "_id", Value: v.writer}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending." + batch, Value: intent{Docs: enc, At: time.Now()}}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("record intent in %s: %w", CountsCollection, err)
	}
	inserted, err := v.insert(ctx, docs)
	if err != nil {
		return err
	}
	var mine []contribution
	for i, c := range cs {
		if inserted[i] {
			mine = append(mine, c)
		}
	}
	return v.settle(ctx, v.writer, batch, viewCounts{}.with(mine...))
}

// settle adds delta to writer's counters and clears its intent batch, if
// that intent is still there: whoever settles it first counts it.
func (v *View) settle(ctx context.Context, writer, batch string, delta viewCounts) error {
	update := bson.D{{Key: "$unset", Value: bson.D{{Key: "pending." + batch, Value: ""}}}}
	if inc := delta.inc(); len(inc) > 0 {
		update = append(update, bson.E{Key: "$inc", Value: inc})
	}
	_, err := v.counts.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: writer}, {Key: "pending." + batch, Value: bson.D{{Key: "$exists", Value: true}}}}, update)
	if err != nil {
		return fmt.Errorf("count %s write %s: %w", ViewCollection, batch, err)
	}
	return nil
}

// countsDoc is one writer's document as read back.
type countsDoc struct {
	ID             string            `bson:"_id"`
	Reached        map[string]int64  `bson:"reached"`
	Lines          map[string]int64  `bson:"lines"`
	EndedAfter     map[string]int64  `bson:"ended_after"`
	RoutedExternal int64             `bson:"routed_external"`
	Pending        map[string]intent `bson:"pending"`
}

func (d countsDoc) counts() viewCounts {
	return viewCounts{Reached: d.Reached, Lines: d.Lines, EndedAfter: d.EndedAfter, RoutedExternal: d.RoutedExternal}
}

// recoverCounts settles the intents older than age, of any writer: their
// documents that carry the intent's batch id were inserted by it. One find
// by write_id reads them for every stale intent at once: on the embedded
// server a find on a field other than _id scans the collection, so a find by
// _id per document of the intent (thousands) would cost far more.
func (v *View) recoverCounts(ctx context.Context, age time.Duration) error {
	docs, err := readCounts(ctx, v.counts)
	if err != nil {
		return err
	}
	type stale struct {
		writer, batch string
		in            intent
	}
	var todo []stale
	var batches []string
	for _, d := range docs {
		for batch, in := range d.Pending {
			if time.Since(in.At) >= age {
				todo = append(todo, stale{d.ID, batch, in})
				batches = append(batches, batch)
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	cur, err := v.coll.Find(ctx, bson.D{{Key: "write_id", Value: bson.D{{Key: "$in", Value: batches}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "write_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("recover %s writes: %w", ViewCollection, err)
	}
	var found []ViewEntry
	if err := cur.All(ctx, &found); err != nil {
		return fmt.Errorf("recover %s writes: %w", ViewCollection, err)
	}
	inserted := map[string]string{} // _id -> the batch that inserted it
	for _, e := range found {
		inserted[e.ID] = e.WriteID
	}
	var errs []error
	for _, st := range todo {
		var mine []contribution
		for _, s := range st.in.Docs {
			c, err := decodeContribution(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if inserted[c.id] == st.batch {
				mine = append(mine, c)
			}
		}
		if err := v.settle(ctx, st.writer, st.batch, viewCounts{}.with(mine...)); err != nil {
			errs = append(errs, err)
			continue
		}
		v.cfg.Logger.Info("order_status: counted the write of a writer that stopped midway",
			"writer", st.writer, "batch", st.batch, "documents", len(st.in.Docs), "inserted", len(mine))
	}
	return errors.Join(errs...)
}

func readCounts(ctx context.Context, coll *mongo.Collection) ([]countsDoc, error) {
	cur, err := coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", CountsCollection, err)
	}
	var docs []countsDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read %s: %w", CountsCollection, err)
	}
	return docs, nil
}

// summarize derives the order counts from the view's counters. Every order
// in the view has a document for each stage up to the last it reached (see
// View.chain), so the orders now at a stage are those that reached it less
// those that went on or ended after it.
func summarize(c viewCounts, deliveryEnabled bool) Summary {
	s := Summary{ByStatus: map[Status]int{}, LinesByStage: map[Status]int{}}
	for _, st := range All {
		s.ByStatus[st] = 0
	}
	r := func(st Status) int { return int(c.Reached[string(st)]) }
	ended := func(rank int) int { return int(c.EndedAfter[strconv.Itoa(rank)]) }
	for i, st := range Stages {
		n := r(st) - ended(i+1)
		if i+1 < len(Stages) {
			n -= r(Stages[i+1])
		}
		s.ByStatus[st] = max(n, 0)
		s.LinesByStage[st] = int(c.Lines[string(st)])
	}
	s.ByStatus[Rejected], s.ByStatus[Failed] = r(Rejected), r(Failed)
	s.LinesRejected, s.LinesFailed = int(c.Lines[string(Rejected)]), int(c.Lines[string(Failed)])
	s.Orders = r(Generated) + ended(0)
	for _, st := range []Status{Generated, Validated, Enriched} {
		s.NotFinal += s.ByStatus[st]
	}
	if deliveryEnabled {
		// Routed orders with external lines wait for their delivery.
		s.NotFinal += max(int(c.RoutedExternal)-r(Delivered)-ended(Routed.Rank()), 0)
	}
	return s
}
