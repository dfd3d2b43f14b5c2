package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
)

// CorrelationID is Watermill's CorrelationID middleware, which copies the
// consumed message's correlation id to what the handler produces, with one
// addition: a message that came without one (a line from another producer,
// such as the original system's) is given its own UUID first, so that every
// line, and every log line about it, carries a correlation id.
func CorrelationID(h message.HandlerFunc) message.HandlerFunc {
	next := wmmiddleware.CorrelationID(h)
	return func(msg *message.Message) ([]*message.Message, error) {
		if wmmiddleware.MessageCorrelationID(msg) == "" {
			id := msg.UUID
			if id == "" {
				id = uuid.NewString()
			}
			wmmiddleware.SetCorrelationID(id, msg)
		}
		return next(msg)
	}
}
