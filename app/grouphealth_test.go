package app

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/internal/testenv"
)

// TestStalledGroupIsVisible leaves a consumer group with lag and no live
// member (enrich, while a router runs only validate): the broker-side group
// lag shows it in /metrics, and /readyz reports degraded, naming the group
// and who holds its partitions, once its commits have not moved for
// router.group_stalled_after.
func TestStalledGroupIsVisible(t *testing.T) {
	brokers, _ := testenv.Brokers(t)
	cfg := testConfig(t, brokers, testenv.MongoURI(t), func(c *config.Config) {
		c.Router.GroupStalledAfter = config.D(time.Second)
		c.Router.GroupHealthInterval = config.D(200 * time.Millisecond)
	})
	ctx := testenv.Context(t, 2*time.Minute)
	if err := loadSample(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	stop := startPipeline(t, cfg)
	first, err := generator.Generate(ctx, cfg, generator.Options{Orders: 40, Seed: 31, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	waitAllFinal(t, cfg, first.FirstID, first.LastID, 40, time.Minute)
	stop() // every group has committed; now only validate runs

	cfg.HTTP.Listen = "127.0.0.1:0"
	p, err := NewPipeline(ctx, cfg, Options{Only: []string{"validate"}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	done := make(chan error, 1)
	runCtx, cancel := context.WithCancel(ctx)
	go func() { done <- p.Run(runCtx, running) }()
	<-running
	t.Cleanup(func() { cancel(); <-done })
	base := p.HTTPURL()
	if _, err := generator.Generate(ctx, cfg, generator.Options{Orders: 40, Seed: 32, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, reason := readyz(t, base)
		if code == http.StatusServiceUnavailable && strings.Contains(reason, "group enrich_group has not moved") {
			if !strings.Contains(reason, "(no member)") || strings.Contains(reason, "group validate_group") {
				t.Fatalf("/readyz says %q", reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %q a minute after enrich stopped", code, reason)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`orderflow_group_lag\{group="enrich_group"\} (\S+)`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no group lag for enrich_group in /metrics")
	}
	if lag, _ := strconv.ParseFloat(string(m[1]), 64); lag <= 0 {
		t.Fatalf("enrich_group lag %s", m[1])
	}
}
