package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// groupHealth watches every consumer group of the configuration from the
// broker's side: the lag of each over all partitions of its topics
// (committed offset against the end), whichever process owns them. A
// router's own lag metric sees only the partitions it holds, so a group
// whose partitions sit with a dead member, or with no member at all, would
// look healthy there.
type groupHealth struct {
	admin        *kadm.Client
	groups       []string
	stalledAfter time.Duration

	mu    sync.Mutex
	state map[string]*groupState
}

type groupState struct {
	lag     int64
	unowned int              // lagging partitions no member holds
	commits map[string]int64 // "topic/partition" -> committed offset
	moved   time.Time        // when the lag was 0 or a commit last moved
	holders []string         // who holds the lagging partitions
}

func newGroupHealth(admin *kadm.Client, groups []string, stalledAfter time.Duration) *groupHealth {
	slices.Sort(groups)
	return &groupHealth{admin: admin, groups: slices.Compact(groups), stalledAfter: stalledAfter, state: map[string]*groupState{}}
}

// run polls the broker every interval until ctx ends.
func (g *groupHealth) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		g.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *groupHealth) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lags, err := g.admin.Lag(ctx, g.groups...)
	if err != nil {
		return // the broker is away: /readyz says so by itself
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, name := range g.groups {
		dl, ok := lags[name]
		if !ok || dl.Error() != nil {
			continue
		}
		st := g.state[name]
		if st == nil {
			st = &groupState{moved: now}
			g.state[name] = st
		}
		commits := map[string]int64{}
		st.lag, st.unowned, st.holders = 0, 0, nil
		for _, l := range dl.Lag.Sorted() {
			if l.Lag <= 0 {
				continue
			}
			st.lag += l.Lag
			commits[fmt.Sprintf("%s/%d", l.Topic, l.Partition)] = l.Commit.At
			holder := "no member"
			if l.Member != nil {
				holder = "member " + l.Member.MemberID
				if l.Member.InstanceID != nil {
					holder = "member " + *l.Member.InstanceID
				}
			} else {
				st.unowned++
			}
			st.holders = append(st.holders, fmt.Sprintf("%s/%d (%s)", l.Topic, l.Partition, holder))
		}
		if st.lag == 0 || !sameCommits(st.commits, commits) {
			st.moved = now
		}
		st.commits = commits
	}
}

func sameCommits(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// stalled reports the groups that have lag and whose commits have not moved
// for stalledAfter, naming who holds their lagging partitions.
func (g *groupHealth) stalled() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, name := range g.groups {
		st := g.state[name]
		if st == nil || st.lag == 0 || time.Since(st.moved) < g.stalledAfter {
			continue
		}
		out = append(out, fmt.Sprintf("group %s has not moved for %v with lag %d; partitions %s",
			name, time.Since(st.moved).Round(time.Second), st.lag, strings.Join(st.holders, ", ")))
	}
	if len(out) == 0 {
		return nil
	}
	return fmt.Errorf("degraded: %s", strings.Join(out, "; "))
}

var (
	groupLagDesc = prometheus.NewDesc("orderflow_group_lag",
		"Messages between each consumer group's committed offsets and the ends of all partitions of its topics, read from the broker.", []string{"group"}, nil)
	groupUnownedDesc = prometheus.NewDesc("orderflow_group_unowned_lagging_partitions",
		"Partitions with lag that no member of the group holds.", []string{"group"}, nil)
)

// Describe implements prometheus.Collector.
func (g *groupHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- groupLagDesc
	ch <- groupUnownedDesc
}

// Collect implements prometheus.Collector.
func (g *groupHealth) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, st := range g.state {
		ch <- prometheus.MustNewConstMetric(groupLagDesc, prometheus.GaugeValue, float64(st.lag), name)
		ch <- prometheus.MustNewConstMetric(groupUnownedDesc, prometheus.GaugeValue, float64(st.unowned), name)
	}
}
