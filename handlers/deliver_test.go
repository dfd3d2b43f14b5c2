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
