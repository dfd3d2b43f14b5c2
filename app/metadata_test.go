package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

// startPipelineHTTP runs a router process with its HTTP listener on a random
// loopback port, and returns the listener's base URL.
func startPipelineHTTP(t *testing.T, ctx context.Context, cfg *config.Config) string {
	t.Helper()
	cfg.HTTP.Listen = "127.0.0.1:0"
	p, err := NewPipeline(ctx, cfg, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- p.Run(runCtx, running) }()
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("pipeline stopped at start: %v", err)
	}
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pipeline shutdown: %v", err)
		}
	})
	return p.HTTPURL()
}

// readyz returns the status code and the error /readyz reports.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

// TestEmptyMetadataThenLoadThenGenerateLosesNothing is the README's quick
// start for real servers, as a user runs it: the router starts on empty
// metadata, `metadata load` runs, and orders are generated at once. No line
// may be judged on the empty snapshot.
func TestEmptyMetadataThenLoadThenGenerateLosesNothing(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), nil)
	ctx := testenv.Context(t, 3*time.Minute)
	base := startPipelineHTTP(t, ctx, cfg)

	if code, reason := readyz(t, base); code != http.StatusServiceUnavailable || !strings.Contains(reason, "metadata") {
		t.Fatalf("/readyz with empty metadata: %d %q", code, reason)
	}
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	const orders = 600
	res, err := generator.Generate(ctx, cfg, generator.Options{Orders: orders, Seed: 17, Rate: 400, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	// Readiness follows the load within the version poll interval.
	for {
		code, reason := readyz(t, base)
		if code == http.StatusOK {
			break
		}
		if time.Since(loaded) > 2*time.Second {
			t.Fatalf("/readyz %d %q two seconds after metadata load", code, reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
	final := waitAllFinal(t, cfg, res.FirstID, res.LastID, orders, 2*time.Minute)
	sum := status.Summarize(final)
	if sum.ByStatus[status.Failed] != 0 || sum.LinesFailed != 0 {
		t.Fatalf("orders failed although the metadata was loaded before they were generated: %+v", sum)
	}
	if sum.ByStatus[status.Rejected] == 0 || sum.ByStatus[status.Delivered] == 0 {
		t.Fatalf("expected rejections and deliveries: %+v", sum)
	}
	if poisoned := testenv.ReadTopic(t, brokers, "poison_queue"); len(poisoned) != 0 {
		t.Fatalf("%d lines poisoned, the first: %s", len(poisoned), poisoned[0].Value)
	}
}

// TestFraudIPAddedWhileRunningIsEnforcedWithinASecond loads a new fraud IP
// into a running router, then sends orders from it: once 1 s has passed after
// the load returned, every one is rejected, without any per-line query.
func TestFraudIPAddedWhileRunningIsEnforcedWithinASecond(t *testing.T) {
	lp := startLoaded(t, nil)
	cfg, ctx, m := lp.cfg, lp.ctx, lp.mongo

	const ip = "198.51.100.77"
	ds, err := metastore.Parse("fraud.json", strings.NewReader(`{"ip_address":"`+ip+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metastore.NewStore(m.DB).Apply(ctx, ds); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the promise: applied within 1 s of the load
	var batch []order.Order
	for id := int64(970001); id <= 970005; id++ {
		o := makeOrder(id, 1000, 1001)
		o.IPAddress = ip
		batch = append(batch, o)
	}
	publishTestOrders(t, cfg, batch, 0)
	reader := status.NewReader(m.DB.Collection(status.Collection), cfg.DeliveryEnabled())
	got := waitFor(t, reader, 970001, 970005, 5)
	for id, o := range got {
		if o.Status != status.Rejected || !strings.Contains(o.Reason, ip) {
			t.Errorf("order %d from the new fraud IP: %s %q", id, o.Status, o.Reason)
		}
	}
}
