package faulttest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/order"
	"github.com/orderflow/orderflow/status"
)

var diagTopics = []string{"raw_order", "valid_orders", "enriched_order_details", "internal_routed_order", "external_routed_order"}

// diagnose logs, for orders not final: their status and progress, where
// their lines sit on every topic, and every group's members, assignments
// and committed offsets against the end offsets. Then it SIGQUITs the
// routers still alive for a goroutine dump and writes their logs to
// HOSTILE_LOGDIR (if set).
func (s *stack) diagnose(res []generator.Result, routers []*router) {
	t := s.t
	first, last, _ := bounds(res)
	m := s.connect()
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reader := status.NewReader(m.DB.Collection(status.Collection), true)
	orders, err := reader.Range(ctx, first, last)
	if err != nil {
		t.Logf("diag: range: %v", err)
	}
	have := map[int64]bool{}
	var stuck []int64
	for _, o := range orders {
		have[o.ID] = true
		if !o.Final {
			stuck = append(stuck, o.ID)
		}
	}
	var missing []int64
	for id := first; id <= last; id++ {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	t.Logf("diag: %d orders with records, %d not final, %d with no record at all: %v", len(orders), len(stuck), len(missing), head(missing, 30))
	// Before the topics are read committed: a transaction left open holds
	// every read below it.
	s.diagStable(ctx)
	// Where every line of the stuck orders sits.
	type key struct {
		o int64
		l int
	}
	want := map[int64]bool{}
	for _, id := range stuck {
		want[id] = true
	}
	for _, id := range missing {
		want[id] = true
	}
	pos := map[key][]string{}
	perPart := map[string][]int64{} // topic/p -> offsets of stuck lines
	for _, topic := range diagTopics {
		for _, r := range testenv.ReadTopic(t, []string{s.kafkaAddr}, topic) {
			l, err := order.DecodeLine(r.Value)
			if err != nil || !want[l.OrderID] {
				continue
			}
			k := key{l.OrderID, l.LineIndex}
			pos[k] = append(pos[k], fmt.Sprintf("%s/%d@%d", topic, r.Partition, r.Offset))
			tp := fmt.Sprintf("%s/%d", topic, r.Partition)
			perPart[tp] = append(perPart[tp], r.Offset)
		}
	}
	detail, _ := reader.Orders(ctx, head(stuck, 40)...)
	for _, o := range detail {
		var prog []string
		for _, p := range o.Progress {
			prog = append(prog, fmt.Sprintf("l%d=%s%s", p.Line, p.Status, reasonOf(p.Reason)))
		}
		var lines []string
		for i := 0; i < max(o.Lines, 1); i++ {
			lines = append(lines, fmt.Sprintf("l%d:%v", i, pos[key{o.ID, i}]))
		}
		t.Logf("diag: order %d %s lines=%d [%s] last=%s at %s", o.ID, o.Status, o.Lines, strings.Join(prog, " "), o.LastSeen.Format("15:04:05.000"), strings.Join(lines, " "))
	}
	for _, id := range head(missing, 10) {
		var lines []string
		for i := 0; i < 10; i++ {
			if p := pos[key{id, i}]; p != nil {
				lines = append(lines, fmt.Sprintf("l%d:%v", i, p))
			}
		}
		t.Logf("diag: order %d (no record) at %s", id, strings.Join(lines, " "))
	}
	var tps []string
	for tp := range perPart {
		tps = append(tps, tp)
	}
	sort.Strings(tps)
	for _, tp := range tps {
		offs := perPart[tp]
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		t.Logf("diag: stuck lines on %s: %d, offsets %d..%d %v", tp, len(offs), offs[0], offs[len(offs)-1], head(offs, 20))
	}
	s.diagGroups(ctx)
	for i, r := range routers {
		select {
		case <-r.exited:
		default:
			_ = r.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-r.exited:
			case <-time.After(10 * time.Second):
			}
		}
		if dir := os.Getenv("HOSTILE_LOGDIR"); dir != "" {
			path := filepath.Join(dir, fmt.Sprintf("router-%d.log", i))
			_ = os.WriteFile(path, []byte(r.output()), 0o644)
			t.Logf("diag: router %d log in %s", i, path)
		}
	}
}

func reasonOf(r string) string {
	if r == "" {
		return ""
	}
	return "(" + r + ")"
}

func head[T any](xs []T, n int) []T { return xs[:min(n, len(xs))] }

// diagStable logs the partitions whose last stable offset is below their
// end: a transaction open there hides what follows from read-committed
// consumers.
func (s *stack) diagStable(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafkaAddr))
	if err != nil {
		s.t.Logf("diag: client: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range append(diagTopics, "order_price", "poison_queue") {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			s.t.Logf("diag: end offsets of %s: %v", topic, err)
			continue
		}
		stable, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			s.t.Logf("diag: stable offsets of %s: %v", topic, err)
			continue
		}
		ends.Each(func(o kadm.ListedOffset) {
			if st, ok := stable.Lookup(topic, o.Partition); ok && st.Offset < o.Offset {
				s.t.Logf("diag: %s/%d last stable %d, end %d: a transaction is open", topic, o.Partition, st.Offset, o.Offset)
			}
		})
	}
}

func (s *stack) diagGroups(ctx context.Context) {
	t := s.t
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.kafkaAddr))
	if err != nil {
		t.Logf("diag: client: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Logf("diag: list groups: %v", err)
		return
	}
	names := groups.Groups()
	sort.Strings(names)
	desc, err := adm.DescribeGroups(ctx, names...)
	if err != nil {
		t.Logf("diag: describe groups: %v", err)
	}
	ends := map[string]kadm.ListedOffsets{}
	for _, name := range names {
		d := desc[name]
		t.Logf("diag: group %s state=%s protocol=%s members=%d err=%v", name, d.State, d.Protocol, len(d.Members), d.Err)
		for _, mem := range d.Members {
			var as []string
			if a, ok := mem.Assigned.AsConsumer(); ok {
				for _, tp := range a.Topics {
					as = append(as, fmt.Sprintf("%s%v", tp.Topic, tp.Partitions))
				}
			}
			t.Logf("diag:   member %s client=%s host=%s assigned=%v", mem.MemberID, mem.ClientID, mem.ClientHost, as)
		}
		offs, err := adm.FetchOffsets(ctx, name)
		if err != nil {
			t.Logf("diag:   fetch offsets: %v", err)
			continue
		}
		var lines []string
		offs.Each(func(o kadm.OffsetResponse) {
			e, ok := ends[o.Topic]
			if !ok {
				e, _ = adm.ListEndOffsets(ctx, o.Topic)
				ends[o.Topic] = e
			}
			end := int64(-1)
			if lo, ok := e.Lookup(o.Topic, o.Partition); ok {
				end = lo.Offset
			}
			meta := o.Metadata
			if len(meta) > 60 {
				meta = meta[:60] + "…"
			}
			mark := ""
			if o.At != end {
				mark = " LAG"
			}
			lines = append(lines, fmt.Sprintf("%s/%d committed=%d end=%d meta=%q%s", o.Topic, o.Partition, o.At, end, meta, mark))
		})
		sort.Strings(lines)
		for _, l := range lines {
			t.Logf("diag:   %s", l)
		}
	}
}

// dumpServers writes the goroutines of this process, where the embedded
// broker and MongoDB-wire server run, to a file kept after the test, and
// logs its path: a read that times out is either the server stuck or the
// server busy, and the dump tells which.
func dumpServers(t *testing.T, why string) {
	f, err := os.CreateTemp("", "faulttest-servers-*.txt")
	if err != nil {
		t.Logf("diag: goroutine dump: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		t.Logf("diag: goroutine dump: %v", err)
		return
	}
	t.Logf("diag: %s; the servers' goroutines are in %s", why, f.Name())
}
