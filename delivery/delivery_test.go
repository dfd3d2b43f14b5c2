package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

func doc() Document {
	l := order.Line{OrderID: 42, Time: "2026-11-24T10:00:00.000000Z", IPAddress: "1.2.3.4", ProductID: 1003, OrderQty: 2,
		FromLocation: 1, ToLocation: 2, UnitOfMeasures: 3, UOMType: "E", ProductPrice: 99.5, LineIndex: 1, LineCount: 2,
		OrderProductIDs: []int64{1000, 1003}, Route: order.RouteExternal, RouteID: 2, ExternalLines: []int{1}}
	return NewDocument("acme", []order.Line{l}, []int{0}, nil)
}

func TestDocumentIsDeterministic(t *testing.T) {
	a, b := doc().JSON(), doc().JSON()
	if string(a) != string(b) {
		t.Fatal("same order, different documents")
	}
	d := doc()
	if d.IdempotencyKey != "orderflow-42-acme" || !d.Partial || d.Note != "this delivery carries 1 of the order's 2 lines; line 0 routed internally" {
		t.Fatalf("%+v", d)
	}
}

func TestDirSinkWritesAtomicallyAndIdempotently(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "partner")
	s := DirSink{Dir: dir}
	want := filepath.Join(dir, "42.json")
	for i, suffix := range []string{"", " (already there)"} {
		path, err := s.Deliver(context.Background(), doc())
		if err != nil {
			t.Fatal(err)
		}
		if path != want+suffix {
			t.Fatalf("delivery %d: %s", i, path)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files %v: want exactly one, no temporary leftovers", entries)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "42.json"))
	var got Document
	if err := json.Unmarshal(data, &got); err != nil || got.OrderID != 42 || len(got.Lines) != 1 {
		t.Fatalf("file %s: %v", data, err)
	}
}

type recorded struct {
	mu   sync.Mutex
	keys []string
	docs []Document
}

func (r *recorded) add(req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var d Document
	_ = json.Unmarshal(body, &d)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
	r.docs = append(r.docs, d)
}

func sink(url string) HTTPSink {
	return HTTPSink{URL: url, Timeout: 200 * time.Millisecond, MaxRetries: 3, InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond}
}

func TestHTTPSink(t *testing.T) {
	var ok recorded
	okSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok.add(r)
		if r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
	}))
	defer okSrv.Close()
	detail, err := sink(okSrv.URL).Deliver(context.Background(), doc())
	if err != nil || detail != "HTTP 200" || len(ok.keys) != 1 || ok.keys[0] != "orderflow-42-acme" || ok.docs[0].OrderID != 42 {
		t.Fatalf("200: %q %v %v", detail, err, ok.keys)
	}

	var flaky recorded
	flakySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flaky.add(r)
		flaky.mu.Lock()
		n := len(flaky.keys)
		flaky.mu.Unlock()
		if n <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
		}
	}))
	defer flakySrv.Close()
	detail, err = sink(flakySrv.URL).Deliver(context.Background(), doc())
	if err != nil || detail != "HTTP 200" || len(flaky.keys) != 3 || flaky.keys[0] != flaky.keys[2] {
		t.Fatalf("500, 500, 200: %q %v %v", detail, err, flaky.keys)
	}

	var bad recorded
	badSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad.add(r)
		http.Error(w, `{"error":"unknown sku"}`, http.StatusBadRequest)
	}))
	defer badSrv.Close()
	_, err = sink(badSrv.URL).Deliver(context.Background(), doc())
	if k, perm := failure.PermanentKind(err); !perm || k != failure.PartnerRejected || !strings.Contains(err.Error(), "400") ||
		!strings.Contains(err.Error(), "unknown sku") || len(bad.keys) != 1 {
		t.Fatalf("400: %v after %d requests", err, len(bad.keys))
	}

	var hang recorded
	release := make(chan struct{})
	hangSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hang.add(r)
		<-release
	}))
	defer hangSrv.Close()
	defer close(release)
	start := time.Now()
	_, err = sink(hangSrv.URL).Deliver(context.Background(), doc())
	if _, perm := failure.PermanentKind(err); perm || err == nil || !strings.Contains(err.Error(), "no answer within 200ms") ||
		len(hang.keys) != 4 || time.Since(start) > 3*time.Second {
		t.Fatalf("hang: %v after %d requests in %v", err, len(hang.keys), time.Since(start))
	}
}

func TestDirSinkCleansStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	stale, fresh := filepath.Join(dir, ".tmp-7-123"), filepath.Join(dir, ".tmp-8-456")
	for _, f := range []string{stale, fresh, filepath.Join(dir, "7.json")} {
		if err := os.WriteFile(f, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	n, err := DirSink{Dir: dir}.CleanTemp(time.Now())
	if err != nil || n != 1 {
		t.Fatalf("removed %d: %v", n, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("the stale temporary file is still there")
	}
	for _, f := range []string{fresh, filepath.Join(dir, "7.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
	if n, err := (DirSink{Dir: filepath.Join(dir, "missing")}).CleanTemp(time.Now()); n != 0 || err != nil {
		t.Fatalf("a missing directory: %d %v", n, err)
	}
}

func TestDirSinkNeverOverwritesADeliveredFile(t *testing.T) {
	dir := t.TempDir()
	sink := DirSink{Dir: dir}
	line := func(qty int) order.Line {
		return order.Line{OrderID: 2, Time: "2026-11-24T10:00:00.000000Z", IPAddress: "8.8.8.8", ProductID: 1001, OrderQty: qty,
			FromLocation: 1, ToLocation: 2, UnitOfMeasures: 1, UOMType: "E", ProductPrice: 10, LineCount: 1, OrderProductIDs: []int64{1001}}
	}
	first := NewDocument("p", []order.Line{line(1)}, nil, nil)
	path, err := sink.Deliver(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := sink.Deliver(context.Background(), first); err != nil || !strings.HasSuffix(again, "(already there)") {
		t.Fatalf("a redelivery: %q %v", again, err)
	}
	before, _ := os.ReadFile(path)
	_, err = sink.Deliver(context.Background(), NewDocument("p", []order.Line{line(5)}, nil, nil))
	if k, ok := failure.PermanentKind(err); !ok || k != failure.Conflict {
		t.Fatalf("a different document for a delivered order: %v, want a conflict", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the delivered file was overwritten")
	}
}
