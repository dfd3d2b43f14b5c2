package middleware

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// RetryConfig configures Retry.
type RetryConfig struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	// Jitter spreads each interval by up to this share either way, so that
	// many messages failing together do not retry together.
	Jitter     float64
	Classifier Classifier
	// ShuttingDown stops the retries when the process is stopping; the
	// message is nacked and consumed again after the restart.
	ShuttingDown func() bool
	Logger       *slog.Logger
	// Describe gives the log attributes that identify a message (its order
	// id and correlation id).
	Describe func(*message.Message) []any
}

// Retry retries a failing handler with exponential backoff and jitter. A
// permanent error is never retried (retrying cannot fix bad input), and
// retries stop when the process shuts down or the message's context ends.
//
// It behaves like Watermill's Retry with ResetContextOnRetry, but costs
// nothing until a message fails: Watermill's sets up its backoff for every
// message, which showed in the profile of the hot path.
func Retry(cfg RetryConfig) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			out, err := h(msg)
			interval := cfg.InitialInterval
			for attempt := 1; err != nil && attempt <= cfg.MaxRetries; attempt++ {
				if cfg.Classifier.IsPermanent(err) || (cfg.ShuttingDown != nil && cfg.ShuttingDown()) {
					return out, err
				}
				delay := interval
				if cfg.Jitter > 0 {
					delay = time.Duration(float64(interval) * (1 + cfg.Jitter*(2*rand.Float64()-1)))
				}
				if cfg.Logger != nil {
					attrs := []any{"handler", message.HandlerNameFromCtx(ctx), "message_uuid", msg.UUID,
						"attempt", attempt, "max_retries", cfg.MaxRetries, "in", delay, "error", err}
					if cfg.Describe != nil {
						attrs = append(attrs, cfg.Describe(msg)...)
					}
					cfg.Logger.Warn("handler failed, retrying", attrs...)
				}
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return out, fmt.Errorf("%w (retries stopped: %w)", err, ctx.Err())
				}
				msg.SetContext(ctx) // each attempt starts from the message's own context
				out, err = h(msg)
				interval = min(time.Duration(float64(interval)*cfg.Multiplier), cfg.MaxInterval)
			}
			return out, err
		}
	}
}
