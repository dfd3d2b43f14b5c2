package kafkapubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Brokers       []string
	ConsumerGroup string
	// ClientOptions are added to the client's options (TLS, SASL).
	ClientOptions []kgo.Opt
	// FromLatest makes a group that has no committed offset start at the end
	// of the topic. The default is the beginning, so that nothing produced
	// before the group's first start is skipped.
	FromLatest bool
	// MaxInFlight is how many messages of one subscription the router may
	// hold at once. More in flight means bigger status batches and more
	// throughput, at the cost of memory and redeliveries after a crash.
	MaxInFlight int
	// CommitInterval is how often acked offsets are committed. A crash
	// redelivers what was acked since the last commit.
	CommitInterval time.Duration
	// DrainTimeout is how long Close, and a rebalance taking partitions away,
	// wait for the messages in flight to be acked before giving up on them
	// (they are then redelivered to whoever consumes next).
	DrainTimeout time.Duration
	// SessionTimeout is how long the group waits for a silent member before
	// giving its partitions to the others.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for every member to
	// rejoin; a member that died without leaving holds the group that long.
	// It must leave room for DrainTimeout, which a member spends in it.
	RebalanceTimeout time.Duration
	// InstanceID, when set, makes this a static member of its groups: a
	// process restarted with the same id takes its partitions back at once,
	// without a rebalance. Give every process its own (a pod name).
	InstanceID string
	// NackBackoff is the first delay before a nacked message is redelivered;
	// it doubles on each nack of the same message up to MaxNackBackoff.
	NackBackoff    time.Duration
	MaxNackBackoff time.Duration
	// ExactlyOnce makes each hop transactional (see txn.go): the outputs a
	// handler publishes with CarryHop and the offsets of the messages they
	// came from are committed in one Kafka transaction. Without it,
	// delivery is at least once.
	ExactlyOnce bool
	Logger      *slog.Logger
}

func (c *SubscriberConfig) setDefaults() {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1024
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 250 * time.Millisecond
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = c.DrainTimeout + 10*time.Second
	}
	if c.NackBackoff == 0 {
		c.NackBackoff = 100 * time.Millisecond
	}
	if c.MaxNackBackoff == 0 {
		c.MaxNackBackoff = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c SubscriberConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka subscriber: no brokers")
	case c.ConsumerGroup == "":
		return errors.New("kafka subscriber: no consumer group")
	case c.MaxInFlight < 1:
		return errors.New("kafka subscriber: max in flight must be positive")
	case c.RebalanceTimeout < c.DrainTimeout:
		return errors.New("kafka subscriber: the rebalance timeout must be at least the drain timeout")
	case c.CommitInterval <= 0 || c.DrainTimeout <= 0 || c.SessionTimeout <= 0 || c.NackBackoff <= 0 || c.MaxNackBackoff < c.NackBackoff:
		return errors.New("kafka subscriber: intervals must be positive, and the max nack backoff at least the first")
	}
	return nil
}

// Subscriber consumes Kafka topics as a member of a consumer group.
type Subscriber struct {
	cfg SubscriberConfig

	mu     sync.Mutex
	subs   []*subscription
	closed bool
}

// NewSubscriber returns a subscriber; it connects on Subscribe.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg}, nil
}

// Subscribe joins the consumer group on topic and returns its messages. The
// channel is closed after the subscription is closed and its messages in
// flight have settled.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kafka subscriber is closed")
	}
	sub, err := newSubscription(ctx, s.cfg, topic)
	if err != nil {
		return nil, err
	}
	s.subs = append(s.subs, sub)
	return sub.out, nil
}

// Close closes every subscription: it stops fetching, waits up to
// DrainTimeout for the messages in flight, commits, and leaves the group; a
// static member (InstanceID) stays in it, so that its restart under the
// same id gets its partitions back without a rebalance.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := s.subs
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub.close(false)
		}()
	}
	wg.Wait()
	return nil
}

// PartitionLag is the consumer lag of one partition: the messages between
// the committed offset and the end of the partition.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int32
	Lag       int64
}

// Lag reports the lag of every partition this subscriber consumes.
func (s *Subscriber) Lag() []PartitionLag {
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	var out []PartitionLag
	for _, sub := range subs {
		out = append(out, sub.lag()...)
	}
	return out
}

type subscription struct {
	cfg    SubscriberConfig
	topic  string
	log    *slog.Logger
	client *kgo.Client
	out    chan *message.Message

	pollCtx    context.Context // ends when closing starts
	stopPoll   context.CancelFunc
	closing    chan struct{}
	abandon    chan struct{} // closed when the drain timeout ran out
	closeOnce  sync.Once
	runDone    chan struct{}
	commitDone chan struct{}
	waiters    sync.WaitGroup

	mu         sync.Mutex
	cond       *sync.Cond
	parts      map[int32]*partition
	inflight   int
	redeliver  []*delivery
	timers     map[*time.Timer]*delivery
	isClosing  bool
	commitMu   sync.Mutex // serialises commits with the revoke of partitions
	ctxWatcher chan struct{}

	// With ExactlyOnce: the transaction, its id, and the offsets run
	// rewinds partitions to after an abort.
	tx     *txn
	txnID  string
	rewind map[int32]kgo.EpochOffset
}

type partition struct {
	id  int32
	win *window
	// inflight counts the deliveries not settled yet; queued those of them
	// the router does not hold: polled and not handed out yet, or nacked
	// and waiting for their redelivery.
	inflight  int
	queued    int
	committed int64
	// first is the first offset fetched here, where an abort rewinds a
	// partition never committed; -1 before.
	first int64
	// committedMeta is the metadata of the last commit: the acked offsets
	// above it (see acked.go).
	committedMeta string
	hwm           int64
	// acked holds the offsets the last commit of the partition's previous
	// owner says were acked: they are skipped. ackedLoaded says it was read.
	acked       map[int64]bool
	ackedLoaded bool
	revoking    bool          // nacks are dropped: the partition is going away
	gone        chan struct{} // closed when revoking is set
	revoked     bool          // never commit again
	ctx         context.Context
	cancel      context.CancelFunc
}

// startRevokingLocked marks p as going away: its queued deliveries are
// dropped instead of handed out, and nacks of it are not redelivered.
func (p *partition) startRevokingLocked() {
	if !p.revoking {
		p.revoking = true
		close(p.gone)
	}
}

// maxInstanceID is Kafka's limit on group.instance.id, that of topic names.
const maxInstanceID = 249

func newSubscription(ctx context.Context, cfg SubscriberConfig, topic string) (*subscription, error) {
	sub := &subscription{
		cfg:        cfg,
		topic:      topic,
		log:        cfg.Logger.With("topic", topic, "group", cfg.ConsumerGroup),
		out:        make(chan *message.Message),
		closing:    make(chan struct{}),
		abandon:    make(chan struct{}),
		runDone:    make(chan struct{}),
		commitDone: make(chan struct{}),
		ctxWatcher: make(chan struct{}),
		parts:      map[int32]*partition{},
		timers:     map[*time.Timer]*delivery{},
		rewind:     map[int32]kgo.EpochOffset{},
	}
	sub.cond = sync.NewCond(&sub.mu)
	start := kgo.NewOffset().AtStart()
	if cfg.FromLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.ConsumerGroup),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.FetchMaxWait(time.Second),
		// Small fetches bound the memory of records waiting for room in
		// flight; 256 KiB a partition was also the fastest on the
		// embedded broker.
		kgo.FetchMaxBytes(16 << 20),
		kgo.FetchMaxPartitionBytes(256 << 10),
		kgo.OnPartitionsAssigned(sub.assigned),
		kgo.OnPartitionsRevoked(sub.revoked),
		kgo.OnPartitionsLost(sub.lost),
		// franz-go names the group in its own key-values: the logger it gets
		// carries only the topic, so no line says "group" twice.
		kgo.WithLogger(kgoLogger{cfg.Logger.With("topic", topic)}),
		// Only what transactions committed, in both modes: a consumer
		// of another router's exactly-once outputs never sees aborted
		// ones.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, cfg.ClientOptions...)
	if cfg.InstanceID != "" {
		id := cfg.InstanceID + "-" + topic
		if len(id) > maxInstanceID {
			return nil, fmt.Errorf("subscribe to %s: instance id %q is longer than Kafka's %d characters: shorten kafka.instance_id or the topic's name", topic, id, maxInstanceID)
		}
		opts = append(opts, kgo.InstanceID(id))
	}
	if cfg.ExactlyOnce {
		// A static member's transactional id is stable, so that its
		// restart aborts what the crashed process left open at once;
		// otherwise that waits for the transaction timeout.
		sub.txnID = cfg.ConsumerGroup + "." + topic + "." + uuid.NewString()
		if cfg.InstanceID != "" {
			sub.txnID = cfg.ConsumerGroup + "." + topic + "." + cfg.InstanceID
		}
		sub.tx = newTxn()
		opts = append(opts,
			kgo.TransactionalID(sub.txnID),
			kgo.TransactionTimeout(cfg.DrainTimeout+10*time.Second),
			kgo.RequireStableFetchOffsets(),
			kgo.ProducerBatchMaxBytes(1<<20),
			kgo.RecordDeliveryTimeout(30*time.Second),
		)
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create kafka consumer for %s: %w", topic, err)
	}
	sub.client = client
	sub.pollCtx, sub.stopPoll = context.WithCancel(context.Background())
	go sub.run()
	go sub.commitLoop()
	go func() {
		defer close(sub.ctxWatcher)
		select {
		case <-ctx.Done():
			sub.close(true)
		case <-sub.closing:
		}
	}()
	return sub, nil
}

func (s *subscription) run() {
	defer close(s.runDone)
	for {
		s.mu.Lock()
		for !s.isClosing && len(s.redeliver) == 0 && s.inflight >= s.cfg.MaxInFlight {
			s.cond.Wait()
		}
		redo := s.redeliver
		s.redeliver = nil
		room := s.cfg.MaxInFlight - s.inflight
		closing := s.isClosing
		s.mu.Unlock()
		if closing {
			for _, d := range redo {
				s.settle(d, false)
			}
			return
		}
		for _, d := range redo {
			s.send(d)
		}
		if room <= 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.pollCtx, 500*time.Millisecond)
		fetches := s.client.PollRecords(ctx, room)
		cancel()
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("kafka fetch error", "partition", p, "error", err)
			}
		})
		var fresh []int32
		s.mu.Lock()
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if p := s.parts[ftp.Partition]; p == nil || !p.ackedLoaded {
				fresh = append(fresh, ftp.Partition)
			}
		})
		s.mu.Unlock()
		if len(fresh) > 0 {
			ctx, cancel := context.WithTimeout(s.pollCtx, 10*time.Second)
			s.loadAcked(ctx, fresh)
			cancel()
		}
		var ds []*delivery
		s.mu.Lock()
		var rewound map[int32]kgo.EpochOffset
		if len(s.rewind) > 0 {
			// An abort gave up on what was in flight: fetch again from
			// the last commit. What this poll brought of those
			// partitions predates the rewind.
			rewound = s.rewind
			s.rewind = map[int32]kgo.EpochOffset{}
			s.client.SetOffsets(map[string]map[int32]kgo.EpochOffset{s.topic: rewound})
		}
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if _, ok := rewound[ftp.Partition]; ok {
				return
			}
			part := s.partitionLocked(ftp.Partition)
			part.hwm = ftp.HighWatermark
			for _, r := range ftp.Records {
				if part.first < 0 {
					part.first = r.Offset
				}
				part.win.add(r.Offset, r.LeaderEpoch)
				if part.acked[r.Offset] {
					// Acked by the partition's previous owner.
					delete(part.acked, r.Offset)
					part.win.ack(r.Offset)
					continue
				}
				d := newDelivery(part, r)
				d.queued = true
				part.inflight++
				part.queued++
				s.inflight++
				ds = append(ds, d)
			}
		})
		s.mu.Unlock()
		// Every polled record is registered with its partition, so a revoke
		// can account for it: let rebalances through before handing the
		// records to the router, which may not take them for a long time
		// (busy handlers, or a subscription nobody reads). A rebalance held
		// here would stall the whole group until the rebalance timeout and
		// then drop this member from it.
		s.client.AllowRebalance()
		for _, d := range ds {
			s.send(d)
		}
	}
}

func (s *subscription) partitionLocked(id int32) *partition {
	p := s.parts[id]
	if p == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p = &partition{id: id, win: newWindow(), committed: -1, first: -1, gone: make(chan struct{}), ctx: ctx, cancel: cancel}
		s.parts[id] = p
	}
	return p
}

// close stops fetching, waits for the messages in flight, commits and leaves
// the group. It is safe to call more than once and from several goroutines.
func (s *subscription) close(fromWatcher bool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosing = true
		// Nacked messages waiting for redelivery are given up on.
		for t, d := range s.timers {
			t.Stop()
			s.settleLocked(d, false)
		}
		s.timers = nil
		s.cond.Broadcast()
		s.mu.Unlock()
		close(s.closing)
		s.stopPoll()
		<-s.runDone
		<-s.commitDone

		s.mu.Lock()
		parts := make([]*partition, 0, len(s.parts))
		for _, p := range s.parts {
			parts = append(parts, p)
		}
		drained := s.waitDrainedLocked(parts, time.Now().Add(s.cfg.DrainTimeout))
		s.mu.Unlock()
		if !drained {
			s.log.Warn("messages still in flight after the drain timeout; they will be consumed again")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.commit(ctx, parts, true)
		cancel()
		close(s.abandon)
		s.waiters.Wait()
		for _, p := range parts {
			p.cancel()
		}
		// Leaving the group (a static member does not leave) runs revoked
		// for every partition; they are all settled and marked revoked by
		// now, so it neither waits nor commits.
		s.client.AllowRebalance()
		s.client.Close()
		close(s.out)
	})
	if !fromWatcher {
		<-s.ctxWatcher
	}
}
