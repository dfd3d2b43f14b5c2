package middleware

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
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
	Logger       watermill.LoggerAdapter
}

// Retry retries a failing handler with exponential backoff. It is Watermill's
// retry, told never to retry a permanent error (retrying cannot fix bad
// input) and to stop during shutdown.
func Retry(cfg RetryConfig) message.HandlerMiddleware {
	r := wmmiddleware.Retry{
		MaxRetries:          cfg.MaxRetries,
		InitialInterval:     cfg.InitialInterval,
		MaxInterval:         cfg.MaxInterval,
		Multiplier:          cfg.Multiplier,
		RandomizationFactor: cfg.Jitter,
		ResetContextOnRetry: true,
		Logger:              cfg.Logger,
		ShouldRetry: func(p wmmiddleware.RetryParams) bool {
			if cfg.Classifier.IsPermanent(p.Err) {
				return false
			}
			return cfg.ShuttingDown == nil || !cfg.ShuttingDown()
		},
	}
	return r.Middleware
}
