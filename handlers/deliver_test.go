package handlers

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/delivery"
	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

type memStatus struct {
	mu   sync.Mutex
	recs []status.Record
}

func (m *memStatus) Record(_ context.Context, recs ...status.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, recs...)
	return nil
}

type memSink struct {
	mu   sync.Mutex
	docs []delivery.Document
	err  error
}

func (s *memSink) Deliver(_ context.Context, d delivery.Document) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	s.docs = append(s.docs, d)
	return "mem/" + d.IdempotencyKey, nil
}

// routed returns the routed lines of order 7 with these products, as route
// would write them.
func routed(t *testing.T, products ...int64) []order.Line {
	t.Helper()
	var out []order.Line
	for i := range products {
		o, err := Route(meta)(context.Background(), line(i, products...))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o.Line)
	}
	return out
}

func TestDeliverWaitsForAllExternalLines(t *testing.T) {
	p2, p3 := &memSink{}, &memSink{}
	st := &memStatus{}
	proc, _ := NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 5 * time.Second,
		Partners: []Partner{
			{Name: "two", RouteIDs: []int{2}, Sink: p2},
			{Name: "toys", Categories: []string{"Toys"}, Sink: p3},
		},
	}})
	lines := routed(t, 1000, 1003, 1004, 1003) // line 0 internal; 1, 3 to "two"; 2 to "toys"
	var wg sync.WaitGroup
	results := make([]error, len(lines))
	for _, idx := range []int{3, 1, 2} { // out of order, concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := status.WithLine(context.Background(), status.LineRef{OrderID: 7, Line: idx, Lines: 4, Handler: "deliver", Topic: "external_routed_order", Offset: int64(idx)})
			out, err := proc(ctx, lines[idx])
			if err == nil && !out.Settled {
				err = errors.New("not settled")
			}
			results[idx] = err
		}()
		time.Sleep(20 * time.Millisecond)
		if len(p2.docs)+len(p3.docs) > 0 && idx != 2 {
			t.Fatal("delivered before every external line arrived")
		}
	}
	wg.Wait()
	for _, idx := range []int{1, 2, 3} {
		if results[idx] != nil {
			t.Fatalf("line %d: %v", idx, results[idx])
		}
	}
	if len(p2.docs) != 1 || len(p3.docs) != 1 {
		t.Fatalf("deliveries: %d and %d", len(p2.docs), len(p3.docs))
	}
	d := p2.docs[0]
	if d.OrderID != 7 || len(d.Lines) != 2 || d.Lines[0].LineIndex != 1 || d.Lines[1].LineIndex != 3 || !d.Partial ||
		d.Note != "this delivery carries 2 of the order's 4 lines; line 0 routed internally; line 2 delivered to another partner" ||
		d.IdempotencyKey != "orderflow-7-two" {
		t.Fatalf("document %+v", d)
	}
	if len(st.recs) != 3 {
		t.Fatalf("status records %+v", st.recs)
	}
	for _, r := range st.recs {
		if r.Status != status.Delivered || r.Partner == "" || r.Detail == "" || r.Handler != "deliver" {
			t.Fatalf("record %+v", r)
		}
	}
}

func TestDeliverFailuresAndTimeouts(t *testing.T) {
	refused := &memSink{err: failure.Permanent(failure.PartnerRejected, errors.New("partner answered 400"))}
	st := &memStatus{}
	proc, _ := NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 100 * time.Millisecond,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: refused}},
		Delivered:       func(context.Context, int64, int) (bool, error) { return false, nil },
	}})
	lines := routed(t, 1003)
	_, err := proc(context.Background(), lines[0])
	if k, ok := failure.PermanentKind(err); !ok || k != failure.PartnerRejected || len(st.recs) != 0 {
		t.Fatalf("refused delivery: %v, records %v", err, st.recs)
	}

	// A line whose sibling never comes gives up after the assembly timeout.
	lines = routed(t, 1003, 1003)
	_, err = proc(context.Background(), lines[0])
	if err == nil || failure.IsUnavailable(err) {
		t.Fatalf("incomplete order: %v", err)
	}

	// A line without a partner fails alone, and its sibling is not held up.
	ok := &memSink{}
	proc, _ = NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 5 * time.Second,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: ok}},
	}})
	lines = routed(t, 1003, 1004)
	done := make(chan error)
	go func() { _, err := proc(context.Background(), lines[0]); done <- err }()
	time.Sleep(20 * time.Millisecond)
	_, err = proc(context.Background(), lines[1])
	if k, _ := failure.PermanentKind(err); k != failure.NoPartner {
		t.Fatalf("line without partner: %v", err)
	}
	select {
	case err := <-done:
		if err != nil || len(ok.docs) != 1 {
			t.Fatalf("sibling: %v, %d docs", err, len(ok.docs))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("sibling waits for a line that failed")
	}
}

func TestDeliverStragglerOfDeliveredOrderIsSettled(t *testing.T) {
	proc, _ := NewDeliverer(Deps{Status: &memStatus{}, Delivery: DeliveryConfig{
		AssemblyTimeout: 50 * time.Millisecond,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: &memSink{}}},
		Delivered:       func(_ context.Context, _ int64, line int) (bool, error) { return line == 0 || line == 1, nil },
	}})
	lines := routed(t, 1003, 1003)
	out, err := proc(context.Background(), lines[1])
	if err != nil || !out.Settled {
		t.Fatalf("straggler: %+v %v", out, err)
	}
}

// slowStatus writes one call at a time, each taking took: a status store
// saturated by a burst.
type slowStatus struct {
	memStatus
	one  sync.Mutex
	took time.Duration
}

func (s *slowStatus) Record(ctx context.Context, recs ...status.Record) error {
	s.one.Lock()
	defer s.one.Unlock()
	time.Sleep(s.took)
	return s.memStatus.Record(ctx, recs...)
}

// lookupCounter is a Delivered func that counts its calls and the most in
// flight at once.
type lookupCounter struct {
	mu              sync.Mutex
	calls, now, max int
}

func (c *lookupCounter) delivered(context.Context, int64, int) (bool, error) {
	c.mu.Lock()
	c.calls++
	c.now++
	c.max = max(c.max, c.now)
	c.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
	return false, nil
}

// TestDeliverBurstWithSlowStatusWrites is the burst that stalled the stage:
// the status writes of many complete orders queue up for longer than the
// assembly timeout. Every line must end delivered: none may give up on an
// order whose delivery is under way, and lines that wait for a delivery
// must not look the order up.
func TestDeliverBurstWithSlowStatusWrites(t *testing.T) {
	st := &slowStatus{took: 15 * time.Millisecond}
	sink := &memSink{}
	lookups := &lookupCounter{}
	proc, _ := NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 500 * time.Millisecond,
		DeliverTimeout:  time.Minute,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: sink}},
		Delivered:       lookups.delivered,
	}})
	const orders = 150 // 150 × 15 ms of status writes: 2.25 s, over 4 assembly timeouts
	base := routed(t, 1003, 1003)
	var wg sync.WaitGroup
	errs := make(chan error, 2*orders)
	for id := int64(1); id <= orders; id++ {
		for _, l := range base {
			l.OrderID = id
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := status.WithLine(context.Background(), status.LineRef{OrderID: id, Line: l.LineIndex, Lines: 2, Handler: "deliver"})
				if _, err := proc(ctx, l); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 3 {
			t.Errorf("line failed: %v", err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d lines failed", n, 2*orders)
	}
	if len(sink.docs) != orders || len(st.recs) != 2*orders {
		t.Fatalf("%d documents and %d delivered records for %d orders", len(sink.docs), len(st.recs), orders)
	}
	if lookups.calls != 0 {
		t.Fatalf("%d status lookups by lines whose order was complete", lookups.calls)
	}
}

// TestDeliverLineWaitsForTheDeliveryUnderWay: a line's own timer running
// out while its order is being delivered is not a missing line.
func TestDeliverLineWaitsForTheDeliveryUnderWay(t *testing.T) {
	st := &slowStatus{took: 400 * time.Millisecond}
	proc, _ := NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 100 * time.Millisecond,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: &memSink{}}},
		Delivered:       func(context.Context, int64, int) (bool, error) { return false, nil },
	}})
	lines := routed(t, 1003, 1003)
	first := make(chan error, 1)
	go func() { _, err := proc(context.Background(), lines[0]); first <- err }()
	time.Sleep(20 * time.Millisecond)
	if _, err := proc(context.Background(), lines[1]); err != nil {
		t.Fatalf("last line: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the line that waited failed although its order was delivered: %v", err)
	}
}

// TestDeliverCopyOfALineBeingDeliveredWaitsForIt: a redelivered copy of a
// line whose order is being delivered takes that delivery's result; it
// neither starts an order of its own nor times out.
func TestDeliverCopyOfALineBeingDeliveredWaitsForIt(t *testing.T) {
	st := &slowStatus{took: 300 * time.Millisecond}
	sink := &memSink{}
	proc, _ := NewDeliverer(Deps{Status: st, Delivery: DeliveryConfig{
		AssemblyTimeout: 100 * time.Millisecond,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: sink}},
		Delivered:       func(context.Context, int64, int) (bool, error) { return false, nil },
	}})
	lines := routed(t, 1003, 1003)
	results := make(chan error, 3)
	for _, l := range []order.Line{lines[0], lines[1], lines[0]} {
		go func() { _, err := proc(context.Background(), l); results <- err }()
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		if err := <-results; err != nil {
			t.Fatalf("line failed: %v", err)
		}
	}
	if len(sink.docs) != 1 {
		t.Fatalf("order delivered %d times", len(sink.docs))
	}
}

// TestDeliverLookupsStayWithinTheirBudget: many lines waiting alone ask
// whether their orders were delivered, never more than MaxLookups at once.
func TestDeliverLookupsStayWithinTheirBudget(t *testing.T) {
	lookups := &lookupCounter{}
	proc, _ := NewDeliverer(Deps{Status: &memStatus{}, Delivery: DeliveryConfig{
		AssemblyTimeout: 300 * time.Millisecond,
		MaxLookups:      2,
		Partners:        []Partner{{Name: "two", RouteIDs: []int{2}, Sink: &memSink{}}},
		Delivered:       lookups.delivered,
	}})
	base := routed(t, 1003, 1003)
	var wg sync.WaitGroup
	for id := int64(1); id <= 40; id++ {
		l := base[0]
		l.OrderID = id
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := proc(context.Background(), l); err == nil {
				t.Errorf("order %d: a line alone was settled", id)
			}
		}()
	}
	wg.Wait()
	if lookups.calls < 40 || lookups.max > 2 {
		t.Fatalf("%d lookups, %d at once (budget 2)", lookups.calls, lookups.max)
	}
}
