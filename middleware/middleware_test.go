package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/orderflow/orderflow/failure"
)

type memPub struct {
	msgs   []*message.Message
	topics []string
	err    error
}

func (m *memPub) Publish(topic string, msgs ...*message.Message) error {
	if m.err != nil {
		return m.err
	}
	m.topics = append(m.topics, topic)
	m.msgs = append(m.msgs, msgs...)
	return nil
}
func (m *memPub) Close() error { return nil }

// chain builds the default order: poison queue outside retry.
func chain(t *testing.T, pub *memPub, shutting *atomic.Bool, h message.HandlerFunc) message.HandlerFunc {
	t.Helper()
	pq, err := PoisonQueue(PoisonQueueConfig{
		Publisher: pub, Topic: "poison", Classifier: AllPermanent, AfterRetries: true, Group: "g",
		Origin: func(*message.Message) (Origin, bool) {
			return Origin{Partition: 3, Offset: 99, Key: []byte("42")}, true
		},
		ShuttingDown: shutting.Load,
	})
	if err != nil {
		t.Fatal(err)
	}
	retry := Retry(RetryConfig{MaxRetries: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, Multiplier: 2, Jitter: 0.2,
		Classifier: AllPermanent, ShuttingDown: shutting.Load})
	return pq(retry(h))
}

func TestPermanentErrorIsPoisonedWithoutRetry(t *testing.T) {
	pub := &memPub{}
	var calls atomic.Int32
	h := chain(t, pub, &atomic.Bool{}, func(*message.Message) ([]*message.Message, error) {
		calls.Add(1)
		return nil, failure.Permanent(failure.InvalidInput, errors.New("bad line"))
	})
	msg := message.NewMessage("u1", []byte("x"))
	if _, err := h(msg); err != nil {
		t.Fatalf("poisoned message must be acked, got %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("permanent error retried: %d calls", calls.Load())
	}
	if len(pub.msgs) != 1 || pub.topics[0] != "poison" {
		t.Fatalf("poison queue: %v", pub.topics)
	}
	md := pub.msgs[0].Metadata
	for k, want := range map[string]string{ReasonKey: "bad line", KindKey: "invalid_input", GroupKey: "g", PartitionKey: "3", OffsetKey: "99", KeyKey: "42"} {
		if md.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, md.Get(k), want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, md.Get(TimeKey)); err != nil {
		t.Errorf("time %q", md.Get(TimeKey))
	}
}

func TestTransientErrorIsRetriedThenPoisoned(t *testing.T) {
	pub := &memPub{}
	var calls atomic.Int32
	h := chain(t, pub, &atomic.Bool{}, func(*message.Message) ([]*message.Message, error) {
		if calls.Add(1) < 3 {
			return nil, errors.New("partner timeout")
		}
		return nil, nil
	})
	if _, err := h(message.NewMessage("u", nil)); err != nil || len(pub.msgs) != 0 || calls.Load() != 3 {
		t.Fatalf("transient error that heals: err %v, poisoned %d, calls %d", err, len(pub.msgs), calls.Load())
	}
	calls.Store(-100)
	if _, err := h(message.NewMessage("u", nil)); err != nil || len(pub.msgs) != 1 || calls.Load() != -96 {
		t.Fatalf("exhausted retries: err %v, poisoned %d, calls %d", err, len(pub.msgs), calls.Load())
	}
	if k := pub.msgs[0].Metadata.Get(KindKey); k != "transient" {
		t.Fatalf("kind %q", k)
	}
}

func TestUnavailabilityAndShutdownAreNeverPoisoned(t *testing.T) {
	pub := &memPub{}
	shutting := &atomic.Bool{}
	h := chain(t, pub, shutting, func(*message.Message) ([]*message.Message, error) {
		return nil, failure.Unavailable(errors.New("mongo unreachable"))
	})
	if _, err := h(message.NewMessage("u", nil)); err == nil || len(pub.msgs) != 0 {
		t.Fatalf("unavailable: err %v, poisoned %d", err, len(pub.msgs))
	}
	shutting.Store(true)
	var calls atomic.Int32
	h = chain(t, pub, shutting, func(*message.Message) ([]*message.Message, error) {
		calls.Add(1)
		return nil, errors.New("broker timeout")
	})
	if _, err := h(message.NewMessage("u", nil)); err == nil || len(pub.msgs) != 0 || calls.Load() != 1 {
		t.Fatalf("during shutdown: err %v, poisoned %d, calls %d", err, len(pub.msgs), calls.Load())
	}
}

func TestPoisonPublishFailureNacks(t *testing.T) {
	pub := &memPub{err: errors.New("broker down")}
	h := chain(t, pub, &atomic.Bool{}, func(*message.Message) ([]*message.Message, error) {
		return nil, failure.Permanent(failure.InvalidInput, errors.New("bad"))
	})
	if _, err := h(message.NewMessage("u", nil)); err == nil {
		t.Fatal("a message that could not be poisoned was acked")
	}
}

func TestClassifierHonoursTheList(t *testing.T) {
	c := Classifier{Permanent: []failure.Kind{failure.InvalidInput}}
	if !c.IsPermanent(fmt.Errorf("x: %w", failure.Permanent(failure.InvalidInput, errors.New("y")))) ||
		c.IsPermanent(failure.Permanent(failure.UnknownReference, errors.New("y"))) || c.IsPermanent(errors.New("z")) {
		t.Fatal("classifier")
	}
}

func TestThrottle(t *testing.T) {
	h := Throttle(100)(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	start := time.Now()
	for range 11 {
		h(message.NewMessage("u", nil))
	}
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Fatalf("11 messages at 100/s took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := Throttle(1)(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	slow(message.NewMessage("a", nil))
	m := message.NewMessage("b", nil)
	m.SetContext(ctx)
	if _, err := slow(m); err == nil {
		t.Fatal("throttle ignored a cancelled context")
	}
}

func TestEveryPoisonedMessageIsCounted(t *testing.T) {
	pub := &memPub{}
	var counted []string
	pq, err := PoisonQueue(PoisonQueueConfig{
		Publisher: pub, Topic: "poison", Classifier: AllPermanent, AfterRetries: true,
		// A message with no key and no order id: nothing names its order.
		Origin:   func(*message.Message) (Origin, bool) { return Origin{}, false },
		OnPoison: func(h string) { counted = append(counted, h) },
	})
	if err != nil {
		t.Fatal(err)
	}
	h := pq(func(*message.Message) ([]*message.Message, error) {
		return nil, failure.Permanent(failure.InvalidInput, errors.New("not a line"))
	})
	for i := range 3 {
		if _, err := h(message.NewMessage(fmt.Sprint(i), []byte("{"))); err != nil {
			t.Fatal(err)
		}
	}
	if len(counted) != 3 || len(pub.msgs) != 3 {
		t.Fatalf("3 poisoned, %d counted, %d published", len(counted), len(pub.msgs))
	}
}

func TestCorrelationIDIsGivenWhenMissing(t *testing.T) {
	var seen string
	h := CorrelationID(func(msg *message.Message) ([]*message.Message, error) {
		seen = wmmiddleware.MessageCorrelationID(msg)
		return []*message.Message{message.NewMessage("out", nil)}, nil
	})
	out, err := h(message.NewMessage("in-uuid", []byte("x")))
	if err != nil || seen != "in-uuid" || wmmiddleware.MessageCorrelationID(out[0]) != "in-uuid" {
		t.Fatalf("correlation id %q on the input, %q on the output, %v", seen, wmmiddleware.MessageCorrelationID(out[0]), err)
	}
	kept := message.NewMessage("u2", nil)
	wmmiddleware.SetCorrelationID("upstream", kept)
	out, _ = h(kept)
	if wmmiddleware.MessageCorrelationID(out[0]) != "upstream" {
		t.Fatal("an existing correlation id was replaced")
	}
}

func TestPoisonKindIsKeptWhenRetried(t *testing.T) {
	pub := &memPub{}
	// unknown_reference left out of permanent: retried, then poisoned.
	classifier := Classifier{Permanent: []failure.Kind{failure.InvalidInput}}
	pq, err := PoisonQueue(PoisonQueueConfig{Publisher: pub, Topic: "poison", Classifier: classifier, AfterRetries: true})
	if err != nil {
		t.Fatal(err)
	}
	h := pq(Retry(RetryConfig{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1, Classifier: classifier})(
		func(*message.Message) ([]*message.Message, error) {
			return nil, failure.Permanent(failure.UnknownReference, errors.New("unknown product_id 7"))
		}))
	if _, err := h(message.NewMessage("u", nil)); err != nil {
		t.Fatal(err)
	}
	if len(pub.msgs) != 1 || pub.msgs[0].Metadata.Get(KindKey) != "unknown_reference" {
		t.Fatalf("poisoned as %q, want unknown_reference", pub.msgs[0].Metadata.Get(KindKey))
	}
}

func TestHeldLineIsReportedAndListed(t *testing.T) {
	lines := NewHeldLines()
	var held []string
	fail := true
	h := Held(HeldConfig{Lines: lines, ReportAfter: 3, OnHeld: func(h string) { held = append(held, h) },
		OrderID: func(*message.Message) string { return "42" }})(func(*message.Message) ([]*message.Message, error) {
		if fail {
			return nil, errors.New("partner says no")
		}
		return nil, nil
	})
	msg := message.NewMessage("u1", nil)
	for range 7 {
		if _, err := h(msg); err == nil {
			t.Fatal("the failure was swallowed")
		}
	}
	got := lines.List()
	if len(held) != 1 || len(got) != 1 || got[0].Attempts != 7 || got[0].OrderID != "42" || got[0].Reason != "partner says no" {
		t.Fatalf("held %v, listed %+v", held, got)
	}
	if _, err := h(message.NewMessage("u2", nil)); err == nil || len(lines.List()) != 1 {
		t.Fatal("a line that failed once is listed as held")
	}
	fail = false
	if _, err := h(msg); err != nil || len(lines.List()) != 0 {
		t.Fatalf("a line that succeeded is still listed: %+v", lines.List())
	}
	// Unavailability is a pause, not a held line.
	un := Held(HeldConfig{Lines: NewHeldLines(), ReportAfter: 1})(func(*message.Message) ([]*message.Message, error) {
		return nil, failure.Unavailable(errors.New("mongo away"))
	})
	if _, err := un(msg); err == nil {
		t.Fatal("unavailability swallowed")
	}
}

func TestPoisonReasonIsBounded(t *testing.T) {
	pub := &memPub{}
	h := chain(t, pub, &atomic.Bool{}, func(*message.Message) ([]*message.Message, error) {
		return nil, failure.Permanent(failure.InvalidInput, fmt.Errorf("time %q is not a time", strings.Repeat("9", 600_000)))
	})
	if _, err := h(message.NewMessage("u", nil)); err != nil {
		t.Fatal(err)
	}
	if r := pub.msgs[0].Metadata.Get(ReasonKey); len(r) > failure.MaxReason || !strings.Contains(r, "bytes in all") {
		t.Fatalf("poison reason of %d bytes", len(r))
	}
}
