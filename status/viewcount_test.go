package status

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/internal/testenv"
)

func TestSummarizeCounts(t *testing.T) {
	// Four orders: 1 validated, 2 routed (internal), 3 routed with an
	// external line, delivered, 4 rejected at validation; 5 failed after
	// enrichment.
	var c viewCounts
	c = c.with(
		contribution{status: Generated, lines: 2}, contribution{status: Validated, lines: 2},
		contribution{status: Generated, lines: 1}, contribution{status: Validated, lines: 1}, contribution{status: Enriched, lines: 1}, contribution{status: Routed, lines: 1},
		contribution{status: Generated, lines: 3}, contribution{status: Validated, lines: 3}, contribution{status: Enriched, lines: 3}, contribution{status: Routed, lines: 3, external: true}, contribution{status: Delivered, lines: 3},
		contribution{status: Generated, lines: 2}, contribution{status: Rejected, lines: 2, after: 1},
		contribution{status: Generated, lines: 1}, contribution{status: Validated, lines: 1}, contribution{status: Enriched, lines: 1}, contribution{status: Failed, lines: 1, after: 3},
	)
	s := summarize(c, true)
	want := map[Status]int{Generated: 0, Validated: 1, Enriched: 0, Routed: 1, Delivered: 1, Rejected: 1, Failed: 1}
	for st, n := range want {
		if s.ByStatus[st] != n {
			t.Errorf("%s: %d orders, want %d (%+v)", st, s.ByStatus[st], n, s.ByStatus)
		}
	}
	if s.Orders != 5 || s.NotFinal != 1 || s.LinesRejected != 2 || s.LinesByStage[Validated] != 7 {
		t.Errorf("summary %+v", s)
	}
	// Before its delivery, order 3 is routed and not final.
	c.Reached[string(Delivered)]--
	if s := summarize(c, true); s.ByStatus[Routed] != 2 || s.NotFinal != 2 {
		t.Errorf("routed, awaiting delivery: %+v", s)
	}
	if s := summarize(c, false); s.NotFinal != 1 {
		t.Errorf("without delivery a routed order is final: %+v", s)
	}
}

// TestViewCountsSurviveAWriterKilledMidway stops a writer between its insert
// and its count, as a SIGKILL would, while another writer inserts some of the
// same documents; the intent left behind is then counted once, exactly.
func TestViewCountsSurviveAWriterKilledMidway(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now()
	rec := func(id int64, st Status) Record {
		return Record{OrderID: id, Line: 0, Lines: 1, Status: st, Route: "internal"}
	}

	dead := NewView(db, ViewConfig{})
	ts := dead.transitions([]Record{rec(1, Routed), rec(2, Validated)}, now)
	batch := newBatchID()
	var docs []ViewEntry
	var cs []contribution
	for _, tr := range ts {
		for _, d := range tr.docs {
			d.WriteID = batch
			docs = append(docs, d)
			cs = append(cs, contribution{id: d.ID, status: d.Status, lines: d.Lines})
		}
	}
	var enc []string
	for _, c := range cs {
		enc = append(enc, c.encode())
	}
	// The intent, then the insert of the dead writer; no count.
	if _, err := dead.counts.UpdateOne(ctx, bson.D{{Key: "_id", Value: dead.writer}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending." + batch, Value: intent{Docs: enc, At: now.Add(-time.Hour)}}}}},
		options.UpdateOne().SetUpsert(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.insert(ctx, docs[:4]); err != nil { // order 1's chain only
		t.Fatal(err)
	}
	// A live writer inserts order 2's statuses, which the dead one meant
	// to insert too, and counts them.
	live := NewView(db, ViewConfig{})
	if err := live.write(ctx, live.transitions([]Record{rec(2, Validated)}, now)); err != nil {
		t.Fatal(err)
	}
	r := NewViewReader(db, false)
	s, err := r.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Orders != 1 || s.ByStatus[Validated] != 1 {
		t.Fatalf("before recovery: %+v", s.ByStatus)
	}
	for range 2 { // settling twice counts once
		if err := live.recoverCounts(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	s, err = r.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Orders != 2 || s.ByStatus[Validated] != 1 || s.ByStatus[Routed] != 1 || s.NotFinal != 1 {
		t.Fatalf("after recovery: %d orders, %+v", s.Orders, s.ByStatus)
	}
	// A young intent is a live writer's: left alone.
	young := NewView(db, ViewConfig{})
	if _, err := young.counts.UpdateOne(ctx, bson.D{{Key: "_id", Value: young.writer}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending.b1", Value: intent{Docs: []string{"3-generated|1|0|0"}, At: time.Now()}}}}},
		options.UpdateOne().SetUpsert(true)); err != nil {
		t.Fatal(err)
	}
	if err := live.recoverCounts(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	docs2, err := readCounts(ctx, live.counts)
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, d := range docs2 {
		pending += len(d.Pending)
	}
	if pending != 1 {
		t.Fatalf("%d intents pending, want the young one", pending)
	}
}

// TestViewReadsAndOpenOrders checks one order's read by _id, the stuck list
// and its upkeep.
func TestViewReadsAndOpenOrders(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	v := NewView(db, ViewConfig{DeliveryEnabled: true})
	old := time.Now().Add(-time.Hour)
	ext := Record{OrderID: 7, Line: 0, Lines: 1, Status: Routed, Route: "external"}
	if err := v.write(ctx, v.transitions([]Record{{OrderID: 6, Line: 0, Lines: 1, Status: Validated}, ext}, old)); err != nil {
		t.Fatal(err)
	}
	r := NewViewReader(db, true)
	got, err := r.Orders(ctx, 6, 7, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Status != Validated || got[0].Final || got[1].Status != Routed || got[1].Final {
		t.Fatalf("orders: %+v %+v", got[0], got[1])
	}
	stuck, total, err := r.Stuck(ctx, time.Minute, 10)
	if err != nil || total != 2 || len(stuck) != 2 {
		t.Fatalf("stuck: %v %d %v", stuck, total, err)
	}
	if done, err := r.Reached(ctx, 7, Delivered); err != nil || done {
		t.Fatalf("order 7 reached delivered before its delivery: %v %v", done, err)
	}
	// Delivered: final, out of the open orders.
	del := Record{OrderID: 7, Line: 0, Lines: 1, Status: Delivered, Expect: 1}
	if err := v.write(ctx, v.transitions([]Record{del}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if done, err := r.Reached(ctx, 7, Delivered); err != nil || !done {
		t.Fatalf("order 7 did not reach delivered: %v %v", done, err)
	}
	if stuck, total, err = r.Stuck(ctx, time.Minute, 10); err != nil || total != 1 || stuck[0].ID != 6 {
		t.Fatalf("stuck after a delivery: %v %d %v", stuck, total, err)
	}
	// An entry left behind by a crash is removed by the upkeep.
	if _, err := db.Collection(OpenCollection).InsertOne(ctx, openEntry{ID: "7", OrderID: 7, Since: old}); err != nil {
		t.Fatal(err)
	}
	if err := v.upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Collection(OpenCollection).CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("open orders after upkeep: %d %v", n, err)
	}
}

// TestGarbageKeyedWithAnotherRoutersFinishedOrder gives one router's view
// an undecodable message keyed with an order that another router's view
// delivered: the order keeps delivered as its last document, while a
// garbage message keyed with an order not finished still fails it.
func TestGarbageKeyedWithAnotherRoutersFinishedOrder(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now()
	a := NewView(db, ViewConfig{DeliveryEnabled: true})
	ext := Record{OrderID: 21, Line: 0, Lines: 1, Status: Routed, Route: "external"}
	del := Record{OrderID: 21, Line: 0, Lines: 1, Status: Delivered}
	val := Record{OrderID: 22, Line: 0, Lines: 1, Status: Validated}
	if err := a.apply(ctx, []Record{ext, del, val}, now); err != nil {
		t.Fatal(err)
	}
	b := NewView(db, ViewConfig{DeliveryEnabled: true})
	garbage := func(id int64) Record {
		return Record{OrderID: id, Line: -1, Status: Failed, Stage: Validated, Reason: "not JSON"}
	}
	if err := b.apply(ctx, []Record{garbage(21), garbage(22)}, now); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int64]Status{21: Delivered, 22: Failed} {
		var last ViewEntry
		if err := db.Collection(ViewCollection).FindOne(ctx, bson.D{{Key: "order_id", Value: id}},
			options.FindOne().SetSort(bson.D{{Key: "step", Value: -1}})).Decode(&last); err != nil {
			t.Fatal(err)
		}
		if last.Status != want {
			t.Errorf("order %d reads %s, want %s", id, last.Status, want)
		}
	}
}
