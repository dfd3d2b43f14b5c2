package faulttest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
)

// everything covers every order a fresh stack generates.
const everything = math.MaxInt64 / 2

// sigkill kills the router at random moments while orders flow, restarting
// it each time. guarantee is kafka.guarantee (empty: the shipped one), for
// sigkill, brokerTrouble and twoRouters.
//
// The router restarts as the same static member (kafka.instance_id), as a
// process restarted in place by systemd or a StatefulSet would: it takes
// its partitions back at once instead of waiting for the group to expire
// the dead member.
func sigkill(t *testing.T, orders int, rate float64, kills int, guarantee string) {
	s := newStack(t)
	s.guarantee = guarantee
	const id = "ORDERFLOW_KAFKA_INSTANCE_ID=router-1"
	r := s.startRouter(id)
	mon := s.watch(1, everything)
	gen := s.generate(orders, rate, 1)
	span := time.Duration(float64(orders) / rate * float64(time.Second))
	start := time.Now()
	var lastRestart time.Time
	for _, at := range randomMoments(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)), kills, span) {
		time.Sleep(time.Until(start.Add(at)))
		r.kill()
		r = s.startRouter(id)
		lastRestart = time.Now()
	}
	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	catchUp := time.Since(lastRestart)
	if s.finalCount(res) < res.Orders {
		s.diagnose([]generator.Result{res}, []*router{r})
		t.FailNow()
	}
	rep := s.check("SIGKILL", []generator.Result{res}, mon)
	if rep.Failed != 0 {
		t.Errorf("%d orders failed: a kill must not poison anything", rep.Failed)
	}
	rep.Figures = append(rep.Figures, fmt.Sprintf("%d kills", kills),
		fmt.Sprintf("all final %.1fs after the last restart", catchUp.Seconds()))
	record(t, rep)
}

// mongoOutage makes MongoDB unreachable for outage in the middle of the
// flow.
func mongoOutage(t *testing.T, orders int, rate float64, outage time.Duration) {
	s := newStack(t)
	r := s.startRouter()
	mon := s.watch(1, everything)
	gen := s.generate(orders, rate, 2)
	time.Sleep(1500 * time.Millisecond)
	before := r.metric("orderflow_lines_total")
	s.mongoProxy.Cut()
	time.Sleep(outage)
	during := r.metric("orderflow_lines_total")
	writeErrors := r.metric("orderflow_status_write_errors_total")
	s.mongoProxy.Restore()
	recovered := time.Now()
	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	catchUp := time.Since(recovered)
	rep := s.check("MongoDB outage", []generator.Result{res}, mon)
	poisoned := r.metric("orderflow_poisoned_lines_total")
	if rep.Failed != 0 || poisoned != 0 {
		t.Errorf("%d orders failed and %v lines poisoned during a MongoDB outage", rep.Failed, poisoned)
	}
	// Processing paused: no status was recorded while MongoDB was away,
	// beyond the writes already under way when it went.
	if during-before > 8000 {
		t.Errorf("%v lines recorded during the outage", during-before)
	}
	if writeErrors == 0 {
		t.Error("no status write failed: the outage did not happen")
	}
	rep.Figures = append(rep.Figures, fmt.Sprintf("%v outage", outage), fmt.Sprintf("%.0f failed writes retried", writeErrors),
		fmt.Sprintf("caught up %.1fs after recovery", catchUp.Seconds()))
	record(t, rep)
}

// sigterm stops the router gracefully under load and starts it again.
func sigterm(t *testing.T, orders int, rate float64) {
	s := newStack(t)
	const id = "ORDERFLOW_KAFKA_INSTANCE_ID=router-1"
	r := s.startRouter(id)
	mon := s.watch(1, everything)
	gen := s.generate(orders, rate, 3)
	time.Sleep(1500 * time.Millisecond)
	took := r.term(45 * time.Second)
	if took > 30*time.Second {
		t.Errorf("exit took %v, more than the 30s close timeout", took)
	}
	s.startRouter(id)
	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	rep := s.check("SIGTERM", []generator.Result{res}, mon)
	rep.Figures = append(rep.Figures, fmt.Sprintf("exited %.2fs after SIGTERM", took.Seconds()),
		fmt.Sprintf("%d duplicates on restart", rep.Duplicates))
	record(t, rep)
}

// brokerTrouble cuts the broker connection, slows it, then restarts the
// broker on its data dir.
func brokerTrouble(t *testing.T, orders int, rate float64, guarantee string) {
	s := newStack(t)
	s.guarantee = guarantee
	r := s.startRouter()
	mon := s.watch(1, everything)
	gen := s.generate(orders, rate, 4)
	time.Sleep(time.Second)
	s.kafkaProxy.Cut()
	time.Sleep(5 * time.Second)
	s.kafkaProxy.Restore()
	time.Sleep(time.Second)
	s.kafkaProxy.SetLatency(20 * time.Millisecond)
	time.Sleep(5 * time.Second)
	s.kafkaProxy.SetLatency(0)
	time.Sleep(time.Second)
	s.restartKafka(2 * time.Second)
	recovered := time.Now()
	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	if s.finalCount(res) < res.Orders {
		s.diagnose([]generator.Result{res}, []*router{r})
		t.FailNow()
	}
	rep := s.check("broker cut, slowed, restarted", []generator.Result{res}, mon)
	rep.Figures = append(rep.Figures, "5s cut, 5s at +20ms a packet, restart with 2s down",
		fmt.Sprintf("caught up %.1fs after the restart", time.Since(recovered).Seconds()))
	record(t, rep)
}

// twoRouters runs two routers in one group and kills one.
func twoRouters(t *testing.T, orders int, rate float64, guarantee string) {
	s := newStack(t)
	s.guarantee = guarantee
	a := s.startRouter()
	b := s.startRouter()
	ctx := testenv.Context(t, time.Minute)
	for _, g := range []string{"validate_group", "enrich_group", "route_group", "deliver_group",
		"order_price_group", "location_product_count_group", "location_product_count_group_by_to_location"} {
		if _, err := s.kafka.Cluster().WaitGroupStable(ctx, g, 2); err != nil {
			t.Fatalf("group %s: %v", g, err)
		}
	}
	mon := s.watch(1, everything)
	gen := s.generate(orders, rate, 5)
	time.Sleep(3 * time.Second)
	la, lb := a.metric("orderflow_lines_total"), b.metric("orderflow_lines_total")
	if la <= 0 || lb <= 0 {
		t.Errorf("work not shared: %v and %v lines", la, lb)
	}
	a.kill()
	killed := time.Now()
	res := <-gen
	s.waitFinal([]generator.Result{res}, 3*time.Minute)
	rep := s.check("two routers, one killed", []generator.Result{res}, mon)
	rep.Figures = append(rep.Figures, fmt.Sprintf("shared %.0f / %.0f lines before the kill", la, lb),
		fmt.Sprintf("all final %.1fs after the kill", time.Since(killed).Seconds()))
	record(t, rep)
}

// soak pushes many lines through one router and watches its memory,
// goroutines and open files.
func soak(t *testing.T, orders int) {
	s := newStack(t)
	r := s.startRouter()
	time.Sleep(2 * time.Second)
	idleGoroutines, idleFDs := r.metric("go_goroutines"), r.metric("process_open_fds")
	gen := s.generate(orders, 0, 6)
	var rss []float64
	var res generator.Result
	generated := false
	for deadline := time.Now().Add(30 * time.Minute); time.Now().Before(deadline); {
		select {
		case res = <-gen:
			generated = true
		case <-time.After(5 * time.Second):
		}
		rss = append(rss, rssMB(r.cmd.Process.Pid))
		if generated && s.finalCount(res) >= res.Orders {
			break
		}
	}
	time.Sleep(5 * time.Second) // idle again
	endGoroutines, endFDs := r.metric("go_goroutines"), r.metric("process_open_fds")
	peak := peakMB(r.cmd.Process.Pid)
	rep := s.check("soak", []generator.Result{res}, nil)
	third := len(rss) / 3
	early, late := mean(rss[third:2*third]), mean(rss[2*third:])
	if peak > 300 || late > early*1.25 {
		t.Errorf("memory not flat: peak %.0f MB, middle third %.0f MB, last third %.0f MB", peak, early, late)
	}
	if endGoroutines > idleGoroutines+50 || endFDs > idleFDs+10 {
		t.Errorf("leak: goroutines %v -> %v, open files %v -> %v", idleGoroutines, endGoroutines, idleFDs, endFDs)
	}
	rep.Figures = append(rep.Figures, fmt.Sprintf("router RSS peak %.0f MB, middle %.0f MB, end %.0f MB", peak, early, late),
		fmt.Sprintf("goroutines idle %.0f -> %.0f, open files %.0f -> %.0f", idleGoroutines, endGoroutines, idleFDs, endFDs))
	record(t, rep)
}

func rssMB(pid int) float64  { return procMB(pid, "VmRSS") }
func peakMB(pid int) float64 { return procMB(pid, "VmHWM") }

func procMB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}
