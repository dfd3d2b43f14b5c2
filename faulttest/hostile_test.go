package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/poison"
)

// stalledAfter is router.group_stalled_after in the hostile scenario: a
// group whose lag does not move for this long makes /readyz degraded.
const stalledAfter = 20 * time.Second

// hostile runs, while orders flow: a 3 MB line on raw_order, which no
// producer batch can carry on; a read storm on the status API; then two
// SIGKILLs 3 s apart, with dynamic membership, so that two dead members
// hold partitions until the broker expires them. Nothing may be lost, the
// big line must be in the poison queue with its size, the storm must not
// fail a status write, and no group may stall for stalledAfter (watched
// on /readyz throughout).
func hostile(t *testing.T, orders int, rate float64) {
	s := newStack(t)
	env := "ORDERFLOW_ROUTER_GROUP_STALLED_AFTER=" + stalledAfter.String()
	var cur atomic.Pointer[router]
	cur.Store(s.startRouter(env))
	mon := s.watch(1, everything)
	stalls := watchReady(t, &cur)
	gen := s.generate(orders, rate, 6)
	ctx := testenv.Context(t, 5*time.Minute)

	// HOSTILE_SKIP=big,storm leaves out the oversized line and the read
	// storm, for runs of the kills alone.
	skip := map[string]bool{}
	for _, w := range strings.Split(os.Getenv("HOSTILE_SKIP"), ",") {
		skip[strings.TrimSpace(w)] = true
	}

	time.Sleep(500 * time.Millisecond)
	var big oversized
	if !skip["big"] {
		big = publishOversized(t, ctx, s.kafkaAddr)
	}

	r := cur.Load()
	var storm stormResult
	var writeErrors float64
	if !skip["storm"] {
		before := r.metric("orderflow_status_write_errors_total")
		storm = readStorm(r.url, 16, 4*time.Second)
		writeErrors = r.metric("orderflow_status_write_errors_total") - before
		if writeErrors != 0 {
			t.Errorf("%v status writes failed during the read storm", writeErrors)
		}
		if storm.ok == 0 {
			t.Errorf("the read storm got no answer: %+v", storm)
		}
	} else {
		time.Sleep(4 * time.Second)
	}

	routers := []*router{r}
	t.Cleanup(func() {
		if dir := os.Getenv("HOSTILE_LOGDIR"); dir != "" {
			for i, r := range routers {
				_ = os.WriteFile(fmt.Sprintf("%s/router-%d.log", dir, i), []byte(r.output()), 0o644)
			}
		}
	})
	t.Logf("kill router 0 at %s", time.Now().Format("15:04:05.000"))
	r.kill()
	cur.Store(s.startRouter(env))
	routers = append(routers, cur.Load())
	time.Sleep(3 * time.Second)
	t.Logf("kill router 1 at %s", time.Now().Format("15:04:05.000"))
	cur.Load().kill()
	cur.Store(s.startRouter(env))
	routers = append(routers, cur.Load())
	lastRestart := time.Now()
	t.Logf("router 2 up at %s", lastRestart.Format("15:04:05.000"))

	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	if s.finalCount(res) < res.Orders {
		s.diagnose([]generator.Result{res}, routers)
		t.FailNow()
	}
	catchUp := time.Since(lastRestart)
	stalled := stalls()
	rep := s.check("hostile: oversized line, read storm, two SIGKILLs 3 s apart", []generator.Result{res}, mon)
	if rep.Failed != 0 {
		t.Errorf("%d orders failed", rep.Failed)
	}
	for _, st := range stalled {
		t.Errorf("/readyz: %s", st)
	}
	entries, err := (&poison.Store{Brokers: []string{s.kafkaAddr}}).List(ctx, "poison_queue")
	if err != nil {
		t.Fatal(err)
	}
	found := skip["big"]
	for _, e := range entries {
		if e.Key == big.key {
			found = e.Metadata[middleware.SizeKey] == fmt.Sprint(big.size) && len(e.Payload) == middleware.ExcerptBytes
		}
	}
	if !found {
		t.Errorf("the %d-byte line is not in the poison queue as an excerpt with its size", big.size)
	}
	rep.Figures = append(rep.Figures,
		fmt.Sprintf("a %d-byte line poisoned as an excerpt", big.size),
		fmt.Sprintf("read storm: %d answered, %d × 503, %d other, slowest %v; %v status writes failed", storm.ok, storm.busy, storm.other, storm.slowest.Round(time.Millisecond), writeErrors),
		fmt.Sprintf("two SIGKILLs 3 s apart; all final %.1fs after the last restart", catchUp.Seconds()),
		fmt.Sprintf("no group stalled for %v", stalledAfter))
	record(t, rep)
}

type oversized struct {
	key  string
	size int
}

// publishOversized puts a 3 MB line on raw_order, as a producer with a
// large batch limit would; the broker takes it.
func publishOversized(t *testing.T, ctx context.Context, addr string) oversized {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := []byte(`{"note": "` + strings.Repeat("x", 3<<20) + `"}`)
	rec := &kgo.Record{Topic: "raw_order", Key: []byte("oversized"), Value: v,
		Headers: []kgo.RecordHeader{{Key: kafkapubsub.UUIDHeader, Value: []byte(testenv.Unique())}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce the oversized line: %v", err)
	}
	return oversized{key: "oversized", size: len(v)}
}

type stormResult struct {
	ok, busy, other int
	slowest         time.Duration
}

// readStorm sends workers concurrent streams of status reads (one order,
// the summary) to url for d.
func readStorm(url string, workers int, d time.Duration) stormResult {
	var mu sync.Mutex
	var out stormResult
	client := &http.Client{Timeout: 10 * time.Second}
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(end) {
				path := fmt.Sprintf("/orders/%d", 1+rng.IntN(1000))
				if rng.IntN(4) == 0 {
					path = "/summary"
				}
				start := time.Now()
				resp, err := client.Get(url + path)
				took := time.Since(start)
				mu.Lock()
				out.slowest = max(out.slowest, took)
				switch {
				case err != nil:
					out.other++
				case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound:
					out.ok++
				case resp.StatusCode == http.StatusServiceUnavailable:
					out.busy++
				default:
					out.other++
				}
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// watchReady polls the current router's /readyz every half second until
// the returned func is called, which returns every distinct report of a
// stalled group.
func watchReady(t *testing.T, cur *atomic.Pointer[router]) func() []string {
	stop, done := make(chan struct{}), make(chan struct{})
	var seen []string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			resp, err := http.Get(cur.Load().url + "/readyz")
			if err != nil {
				continue // a router killed or starting
			}
			var body struct {
				Error string `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if strings.Contains(body.Error, "has not moved") && len(seen) < 5 {
				seen = append(seen, body.Error)
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(stop); <-done }) })
	return func() []string {
		once.Do(func() { close(stop); <-done })
		return seen
	}
}
