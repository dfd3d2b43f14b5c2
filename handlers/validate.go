package handlers

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/order"
)

// Validate rejects a line whose IP address is on the fraud list; any other
// line goes on unchanged.
//
// The IP was decoded into a string and checked to be an IPv4 address before
// it gets here, and the fraud list is an in-memory set, so no value of the
// line ever reaches a database query.
func Validate(fraud FraudList) Processor {
	return func(_ context.Context, line order.Line) (Outcome, error) {
		if fraud.IsFraud(line.IPAddress) {
			return Outcome{Rejected: fmt.Sprintf("ip_address %s is on the fraud list", line.IPAddress)}, nil
		}
		return Outcome{Line: line}, nil
	}
}
