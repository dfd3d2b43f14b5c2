package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/orderflow/orderflow/failure"
)

// HTTPSink POSTs each order's document to a partner's endpoint.
type HTTPSink struct {
	URL string
	// Token, when set, is sent as a bearer token.
	Token string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// MaxRetries is how many times a 5xx answer or a network error is
	// retried, waiting InitialInterval, doubled each time up to MaxInterval.
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Client          *http.Client
}

// Deliver posts the document. It returns "HTTP <status>" once the partner
// answered 2xx. A 4xx answer is a permanent error carrying the partner's
// answer, and is not retried; 5xx answers and network errors are retried,
// then returned as a transient error.
func (s HTTPSink) Deliver(ctx context.Context, d Document) (string, error) {
	body := d.JSON()
	wait := s.InitialInterval
	var last error
	for attempt := 0; attempt <= s.MaxRetries; attempt++ {
		if attempt > 0 {
			// Full jitter keeps partners from being hit in lockstep.
			delay := wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("deliver order %d: %w (last attempt: %v)", d.OrderID, ctx.Err(), last)
			case <-time.After(delay):
			}
			wait = min(wait*2, s.MaxInterval)
		}
		code, answer, err := s.post(ctx, d, body)
		switch {
		case err != nil:
			last = err
		case code >= 200 && code < 300:
			return fmt.Sprintf("HTTP %d", code), nil
		case code >= 400 && code < 500:
			return "", failure.Permanent(failure.PartnerRejected,
				fmt.Errorf("partner answered %d %s: %s", code, http.StatusText(code), answer))
		default:
			last = fmt.Errorf("partner answered %d %s: %s", code, http.StatusText(code), answer)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("deliver order %d: gave up after %d attempts: %w", d.OrderID, s.MaxRetries+1, last)
}

func (s HTTPSink) post(ctx context.Context, d Document, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", failure.Permanent(failure.PartnerRejected, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", d.IdempotencyKey)
	req.Header.Set("User-Agent", "orderflow")
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, "", fmt.Errorf("no answer within %v", s.Timeout)
		}
		return 0, "", fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(answer)), nil
}
