package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/middleware"
)

// routerOnly pushes lines through three hops of Watermill Router handlers
// that do nothing, over an in-memory transport instead of a broker, and
// returns lines/s. The handlers carry the shipped middleware that does no
// I/O (correlation id, retry, timeout, recoverer) and the router's
// Prometheus metrics, as the pipeline's do.
//
// It is what the Router alone costs: no decoding, no lookups, no status
// writes, no broker. No pipeline that keeps the Router, its middleware and
// its ack semantics can be faster, which puts the pipeline / ceiling goal in
// proportion. See docs/performance.md.
func routerOnly(ctx context.Context, lines, partitions int) (float64, error) {
	if lines <= 0 || partitions <= 0 {
		return 0, errors.New("router only: lines and partitions must be positive")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mem := newMemTopics(ctx, lines, partitions)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return 0, fmt.Errorf("router only: %w", err)
	}
	metrics.NewPrometheusMetricsBuilder(prometheus.NewRegistry(), "router_only", "").AddPrometheusRouterMetrics(router)
	router.AddMiddleware(
		wmmiddleware.CorrelationID,
		middleware.Retry(middleware.RetryConfig{MaxRetries: 3, InitialInterval: 100 * time.Millisecond,
			MaxInterval: 2 * time.Second, Multiplier: 2, Jitter: 0.2, Classifier: middleware.AllPermanent}),
		wmmiddleware.Timeout(30*time.Second),
		wmmiddleware.Recoverer,
	)
	pass := func(msg *message.Message) ([]*message.Message, error) {
		return []*message.Message{message.NewMessage(msg.UUID, msg.Payload)}, nil
	}
	hops := []string{"raw", "valid", "enriched", "routed"}
	for i := range len(hops) - 1 {
		router.AddHandler(hops[i+1], hops[i], mem, hops[i+1], mem, pass)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case err := <-runErr:
		return 0, fmt.Errorf("router only: %w", err)
	}

	values, _ := sampleLines(min(lines, 1000))
	start := time.Now()
	for i := range lines {
		if err := mem.Publish(hops[0], message.NewMessage(strconv.Itoa(i), values[i%len(values)])); err != nil {
			return 0, err
		}
	}
	out := mem.topic(hops[len(hops)-1])
	for range lines {
		select {
		case <-out:
		case <-ctx.Done():
			return 0, ctx.Err()
		case err := <-runErr:
			return 0, fmt.Errorf("router only: router stopped: %v", err)
		}
	}
	took := time.Since(start)
	cancel()
	if err := <-runErr; err != nil {
		return 0, fmt.Errorf("router only: %w", err)
	}
	mem.wg.Wait()
	return float64(lines) / took.Seconds(), nil
}

// memTopics is a Watermill Publisher and Subscriber in memory. Each
// subscription hands out one message at a time per partition and waits for
// its ack, as a Kafka partition's subscription does; a nacked message is
// sent again.
type memTopics struct {
	ctx        context.Context
	size       int
	partitions int
	mu         sync.Mutex
	topics     map[string]chan *message.Message
	wg         sync.WaitGroup
}

func newMemTopics(ctx context.Context, size, partitions int) *memTopics {
	return &memTopics{ctx: ctx, size: size, partitions: partitions, topics: map[string]chan *message.Message{}}
}

// topic returns the topic's queue, big enough for every line so that
// publishing never blocks.
func (m *memTopics) topic(name string) chan *message.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.topics[name]
	if !ok {
		ch = make(chan *message.Message, m.size)
		m.topics[name] = ch
	}
	return ch
}

// Publish queues the messages on the topic.
func (m *memTopics) Publish(topic string, msgs ...*message.Message) error {
	ch := m.topic(topic)
	for _, msg := range msgs {
		select {
		case ch <- msg:
		case <-m.ctx.Done():
			return m.ctx.Err()
		}
	}
	return nil
}

// Subscribe hands out the topic's messages from one goroutine per
// partition; they stop with the context given to newMemTopics or to
// Subscribe.
func (m *memTopics) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in := m.topic(topic)
	out := make(chan *message.Message)
	var parts sync.WaitGroup
	for range m.partitions {
		parts.Add(1)
		go func() {
			defer parts.Done()
			for {
				var msg *message.Message
				select {
				case msg = <-in:
				case <-ctx.Done():
					return
				case <-m.ctx.Done():
					return
				}
				for acked := false; !acked; {
					sent := msg.Copy()
					select {
					case out <- sent:
					case <-ctx.Done():
						return
					case <-m.ctx.Done():
						return
					}
					select {
					case <-sent.Acked():
						acked = true
					case <-sent.Nacked():
					case <-ctx.Done():
						return
					case <-m.ctx.Done():
						return
					}
				}
			}
		}()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		parts.Wait()
		close(out)
	}()
	return out, nil
}

// Close does nothing: the transport stops with its context.
func (m *memTopics) Close() error { return nil }
