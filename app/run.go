package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/orderflow/orderflow/aggregate"
	"github.com/orderflow/orderflow/httpapi"
	"github.com/orderflow/orderflow/kafkapubsub"
	"github.com/orderflow/orderflow/metrics"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/prometheus/client_golang/prometheus"
)

// Run runs the handlers until ctx ends, then shuts down gracefully: no new
// message is taken, those in flight finish (up to router.close_timeout),
// their offsets are committed, and the connections are closed.
func (p *Pipeline) Run(ctx context.Context, running chan<- struct{}) error {
	defer p.release()
	cacheCtx, stopCache := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.cache.Run(cacheCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.groups.run(cacheCtx, p.cfg.Router.GroupHealthInterval.Duration)
	}()
	for _, a := range p.aggregators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Run(cacheCtx)
		}()
	}
	if p.view != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.view.Run(cacheCtx)
		}()
	}
	defer stopCache()

	stopped := make(chan struct{})
	var closeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		p.closing.Store(true)
		close(p.stopping)
		p.log.Info("shutting down: finishing the messages in flight", "timeout", p.cfg.Router.CloseTimeout.Duration)
		// Writes retrying through an outage get most of the close timeout,
		// then give up so their messages are nacked before it ends.
		giveUp := time.AfterFunc(p.cfg.Router.CloseTimeout.Duration*3/4, p.stopWrites)
		defer giveUp.Stop()
		closeErr = p.router.Close()
	}()
	if running != nil {
		go func() {
			select {
			case <-p.router.Running():
				close(running)
			case <-stopped:
			}
		}()
	}
	if p.cfg.HTTP.Listen != "" {
		// The API reads through a small pool of its own: a storm of reads
		// waits there, never for the connections status writes need.
		apiCfg := p.cfg.MongoDB
		apiCfg.MaxPoolSize = p.cfg.HTTP.MongoPool
		apiMongo, err := mongoclient.Connect(apiCfg)
		if err != nil {
			p.router.Close()
			return err
		}
		srv, err := httpapi.Start(httpapi.Config{
			Listen: p.cfg.HTTP.Listen, Gatherer: p.metrics.Registry, Ready: p.ready, Orders: StatusReader(p.cfg, apiMongo.DB), Status: currentStatusSource(p.cfg, apiMongo.DB),
			StuckAfter: p.cfg.HTTP.StuckAfter.Duration, Logger: p.log,
			MaxConcurrent: p.cfg.HTTP.MaxConcurrent, RequestTimeout: p.cfg.HTTP.RequestTimeout.Duration,
			Held:       func() any { return p.held.List() },
			Aggregates: aggregate.NewReader(apiMongo.DB, p.cfg),
		})
		if err != nil {
			_ = apiMongo.Close(context.Background())
			p.router.Close()
			return err
		}
		p.http = srv
		p.log.Info("http listener", "url", srv.URL())
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Close(ctx)
			_ = apiMongo.Close(ctx)
		}()
	}
	p.log.Info("router starting", "handlers", p.handlers, "client", p.cfg.Kafka.Client)
	err := p.router.Run(context.Background())
	close(stopped)
	stopCache()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("run router: %w", err)
	}
	if closeErr != nil {
		return fmt.Errorf("shut down router: %w", closeErr)
	}
	p.log.Info("router stopped")
	return nil
}

// HTTPURL is the base URL of the HTTP listener once Run started it.
func (p *Pipeline) HTTPURL() string {
	if p.http == nil {
		return ""
	}
	return p.http.URL()
}

// Metrics returns the process's metrics.
func (p *Pipeline) Metrics() *metrics.Metrics { return p.metrics }

// ready reports whether the process can work: the router runs, the broker
// and MongoDB answer, and the metadata is loaded.
func (p *Pipeline) ready(ctx context.Context) error {
	if p.closing.Load() {
		return errors.New("shutting down")
	}
	if !p.router.IsRunning() {
		return errors.New("router not running")
	}
	if err := p.admin.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if err := p.mongo.Client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongodb: %w", err)
	}
	if err := p.groups.stalled(); err != nil {
		return err
	}
	if held := p.held.List(); len(held) > 0 && time.Since(held[0].Since) >= p.cfg.Router.HeldDegradedAfter.Duration {
		l := held[0]
		return fmt.Errorf("degraded: %d line(s) held; handler %s has failed a line of order %s %d times since %s: %s",
			len(held), l.Handler, l.OrderID, l.Attempts, l.Since.Format(time.RFC3339), l.Reason)
	}
	return p.cache.Ready()
}

// lagCollector reports the consumer lag of the process's subscribers.
type lagCollector struct{ p *Pipeline }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.subs {
		ls, ok := s.(interface {
			Lag() []kafkapubsub.PartitionLag
		})
		if !ok {
			continue
		}
		for _, l := range ls.Lag() {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Lag), l.Group, l.Topic, strconv.Itoa(int(l.Partition)))
		}
	}
}

// Close releases a pipeline that was built but never run; Run releases its
// own.
func (p *Pipeline) Close() {
	for _, s := range p.subs {
		_ = s.Close()
	}
	p.release()
}

// release closes what NewPipeline opened, in dependency order.
func (p *Pipeline) release() {
	if p.stopWrites != nil {
		p.stopWrites()
	}
	if p.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.stopTracing(ctx)
		cancel()
	}
	if p.admin != nil {
		p.admin.Close()
	}
	if p.pub != nil {
		if err := p.pub.Close(); err != nil {
			p.log.Warn("close kafka publisher", "error", err)
		}
	}
	if p.recorder != nil {
		p.recorder.Close()
	}
	if p.claims != nil {
		p.claims.Close()
	}
	if p.mongo != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.mongo.Close(ctx)
	}
}
