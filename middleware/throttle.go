package middleware

import (
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Throttle lets at most perSecond messages a second into the handler. Unlike
// Watermill's, it keeps no ticker running and gives up waiting when the
// message's context ends.
func Throttle(perSecond int) message.HandlerMiddleware {
	interval := time.Second / time.Duration(max(perSecond, 1))
	var mu sync.Mutex
	var next time.Time
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			mu.Lock()
			now := time.Now()
			if next.Before(now) {
				next = now
			}
			wait := next.Sub(now)
			next = next.Add(interval)
			mu.Unlock()
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-msg.Context().Done():
					t.Stop()
					return nil, fmt.Errorf("throttled message given up: %w", msg.Context().Err())
				}
			}
			return h(msg)
		}
	}
}
