package status

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/internal/testenv"
)

// countingDB connects with a command monitor counting inserts.
func countingDB(t *testing.T) (*mongo.Database, *atomic.Int64) {
	t.Helper()
	var inserts atomic.Int64
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "insert" {
			inserts.Add(1)
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client.Database("status_" + testenv.Unique()), &inserts
}

func TestRecorderBatchesConcurrentRecords(t *testing.T) {
	db, inserts := countingDB(t)
	ctx := testenv.Context(t, time.Minute)
	coll := db.Collection(Collection)
	rec, err := NewRecorder(coll, RecorderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	const orders, lines = 500, 2
	var wg sync.WaitGroup
	for o := 1; o <= orders; o++ {
		for l := 0; l < lines; l++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, st := range []Status{Generated, Validated} {
					r := Record{OrderID: int64(o), Line: l, Lines: lines, Status: st, Time: time.Now(), Handler: "h", Topic: "t"}
					if err := rec.Record(ctx, r); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	records := orders * lines * 2
	if n := inserts.Load(); n == 0 || n > int64(records/20) {
		t.Fatalf("%d records took %d inserts; want batching to at least 20 records per insert", records, n)
	}
	// A redelivered record is stored again but not counted again.
	if err := rec.Record(ctx, Record{OrderID: 1, Line: 0, Lines: lines, Status: Validated, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}

	reader := NewReader(coll, false)
	all, err := reader.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := Summarize(all)
	if sum.Orders != orders || sum.ByStatus[Validated] != orders || sum.LinesByStage[Validated] != orders*lines {
		t.Fatalf("summary %+v", sum)
	}
	got, err := reader.Orders(ctx, 7, 1, 999999)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != 7 || got[1].ID != 1 || got[1].Status != Validated {
		t.Fatalf("orders %+v", got)
	}
	if len(got[1].History) != 5 || !got[1].History[4].Repeat {
		t.Fatalf("history of order 1: %+v", got[1].History)
	}
}

func TestRecorderFailsBatchWhenMongoIsDown(t *testing.T) {
	m := testenv.StartMongo(t, testenv.TempDir(t))
	proxy := startProxy(t, m.Addr())
	db := testenv.DatabaseAt(t, "mongodb://"+proxy.Addr()+"/?serverSelectionTimeoutMS=500", "down")
	rec, err := NewRecorder(db.Collection(Collection), RecorderConfig{WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx := testenv.Context(t, time.Minute)
	if err := rec.Record(ctx, Record{OrderID: 1, Status: Generated, Lines: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	err = rec.Record(ctx, Record{OrderID: 2, Status: Generated, Lines: 1, Time: time.Now()})
	if err == nil {
		t.Fatal("record succeeded while mongo is unreachable")
	}
	proxy.Restore()
	// The first writes may still meet connections cut by the outage; the
	// recorder recovers by itself within a few attempts.
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		if lastErr = rec.Record(ctx, Record{OrderID: 3, Status: Generated, Lines: 1, Time: time.Now()}); lastErr == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("recorder did not recover: %v", lastErr)
	}
}

func TestRecorderCloseFlushesAndRefuses(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	rec, _ := NewRecorder(db.Collection(Collection), RecorderConfig{})
	if err := rec.Record(ctx, Record{OrderID: 1, Status: Generated, Lines: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rec.Close()
	if err := rec.Record(ctx, Record{OrderID: 2, Status: Generated, Lines: 1, Time: time.Now()}); err == nil {
		t.Fatal("closed recorder accepted a record")
	}
}

type failingPublisher struct{ published int }

func (f *failingPublisher) Publish(string, ...*message.Message) error {
	f.published++
	return errors.New("broker down")
}
func (f *failingPublisher) Close() error { return nil }

type memWriter struct{ recs []Record }

func (m *memWriter) Record(_ context.Context, recs ...Record) error {
	m.recs = append(m.recs, recs...)
	return nil
}

type okPublisher struct{}

func (okPublisher) Publish(string, ...*message.Message) error { return nil }
func (okPublisher) Close() error                              { return nil }

func TestPublisherRecordsOnlyAfterSuccessfulPublish(t *testing.T) {
	w := &memWriter{}
	msg := message.NewMessage("1", nil)
	msg.SetContext(WithLine(context.Background(), LineRef{OrderID: 5, Line: 1, Lines: 2, Stage: Validated, Handler: "validate", Topic: "raw_order", Partition: 2, Offset: 9}))
	msg.Metadata.Set("why", "because")

	p := &Publisher{Next: &failingPublisher{}, Writer: w, Status: Validated}
	if err := p.Publish("valid_orders", msg); err == nil || len(w.recs) != 0 {
		t.Fatalf("a failed publish recorded %v (err %v)", w.recs, err)
	}
	p = &Publisher{Next: okPublisher{}, Writer: w, Status: Failed, ReasonKey: "why"}
	plain := message.NewMessage("2", nil) // no line: nothing to record
	if err := p.Publish("poison", msg, plain); err != nil {
		t.Fatal(err)
	}
	if len(w.recs) != 1 {
		t.Fatalf("records %+v", w.recs)
	}
	r := w.recs[0]
	if r.OrderID != 5 || r.Line != 1 || r.Status != Failed || r.Stage != Validated || r.Reason != "because" ||
		r.Output != "poison" || r.Topic != "raw_order" || r.Partition != 2 || r.Offset != 9 || r.Handler != "validate" {
		t.Fatalf("record %+v", r)
	}
}

func TestCountsAndFirstTimes(t *testing.T) {
	db := testenv.Database(t)
	ctx := testenv.Context(t, time.Minute)
	coll := db.Collection(Collection)
	rec, _ := NewRecorder(coll, RecorderConfig{})
	defer rec.Close()
	base := time.Now().Truncate(time.Millisecond)
	for _, r := range []Record{
		{OrderID: 10, Line: 0, Lines: 1, Status: Generated, Time: base},
		{OrderID: 10, Line: 0, Lines: 1, Status: Routed, Time: base.Add(30 * time.Millisecond)},
		{OrderID: 10, Line: 0, Lines: 1, Status: Routed, Time: base.Add(90 * time.Millisecond)}, // redelivery
		{OrderID: 11, Line: 0, Lines: 1, Status: Generated, Time: base},
		{OrderID: 11, Line: 0, Lines: 1, Status: Rejected, Time: base.Add(time.Millisecond)},
		{OrderID: 99, Line: 0, Lines: 1, Status: Routed, Time: base},
	} {
		if err := rec.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(coll, false)
	n, err := r.CountRecords(ctx, 10, 11, Routed, Rejected)
	if err != nil || n != 3 {
		t.Fatalf("count %d %v", n, err)
	}
	times, err := r.FirstTimes(ctx, 10, 11, Generated, Routed)
	if err != nil {
		t.Fatal(err)
	}
	ts := times[LineKey{10, 0}]
	if len(times) != 2 || ts[1].Sub(ts[0]) != 30*time.Millisecond || !times[LineKey{11, 0}][1].IsZero() {
		t.Fatalf("times %v", times)
	}
}

func TestRecorderRetriesThroughAnOutage(t *testing.T) {
	m := testenv.StartMongo(t, testenv.TempDir(t))
	proxy := startProxy(t, m.Addr())
	db := testenv.DatabaseAt(t, "mongodb://"+proxy.Addr()+"/?serverSelectionTimeoutMS=300", "retry")
	rec, err := NewRecorder(db.Collection(Collection), RecorderConfig{WriteTimeout: 500 * time.Millisecond, Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx := testenv.Context(t, time.Minute)
	proxy.Cut()
	time.AfterFunc(2*time.Second, proxy.Restore)
	start := time.Now()
	if err := rec.Record(ctx, Record{OrderID: 1, Status: Generated, Lines: 1, Time: time.Now()}); err != nil {
		t.Fatalf("retrying record failed: %v", err)
	}
	if time.Since(start) < 2*time.Second {
		t.Fatal("record returned before MongoDB was back")
	}
	// A context that ends stops the retries.
	proxy.Cut()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := rec.Record(short, Record{OrderID: 2, Status: Generated, Lines: 1, Time: time.Now()}); err == nil {
		t.Fatal("record succeeded with MongoDB away")
	}
	proxy.Restore()
}

// TestRecorderRetryAfterAClientTimeoutInsertsOnce: a write that the client
// gave up on but the server did is found there by the retry, not inserted
// again.
func TestRecorderRetryAfterAClientTimeoutInsertsOnce(t *testing.T) {
	m := testenv.StartMongo(t, testenv.TempDir(t))
	proxy := startProxy(t, m.Addr())
	db := testenv.DatabaseAt(t, "mongodb://"+proxy.Addr()+"/?serverSelectionTimeoutMS=2000", "timeout")
	coll := db.Collection(Collection)
	rec, err := NewRecorder(coll, RecorderConfig{WriteTimeout: 400 * time.Millisecond, Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx := testenv.Context(t, time.Minute)
	// Warm the connection pool, so the timed-out write is the insert.
	if err := rec.Record(ctx, Record{OrderID: 1, Status: Generated, Lines: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The insert reaches the server after 300 ms; its answer would reach
	// the client after 600 ms, past the 400 ms timeout.
	proxy.SetLatency(300 * time.Millisecond)
	time.AfterFunc(time.Second, func() { proxy.SetLatency(0) })
	if err := rec.Record(ctx, Record{OrderID: 2, Status: Validated, Lines: 1, Time: time.Now()}); err != nil {
		t.Fatalf("retrying record failed: %v", err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "status", Value: string(Validated)}})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("the record was stored in %d documents, want 1", n)
	}
}

func TestStatusDocumentsStayFarUnderTheDocumentLimit(t *testing.T) {
	// A whole batch of failures whose reasons quote 600 KB of input each:
	// reasons are cut, so no document nears MongoDB's 16 MB.
	huge := strings.Repeat("9", 600_000)
	reason := "time " + huge + " is not a time"
	var recs []Record
	for i := range 4000 {
		recs = append(recs, Record{OrderID: int64(i + 1), Line: 0, Lines: 1, Status: Failed, Stage: Validated,
			Time: time.Now(), Handler: "validate", Reason: reason, Detail: huge})
	}
	for _, d := range toDocs(recs, 1000, time.Now()) {
		data, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 4<<20 {
			t.Fatalf("a status document of %d bytes", len(data))
		}
	}
}
