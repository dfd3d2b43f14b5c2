//go:build fault

package faulttest

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
)

// The full suite: `go test -tags fault -timeout 90m ./faulttest`.

func TestSIGKILL(t *testing.T)       { sigkill(t, 20000, 1000, 10, "") }
func TestMongoOutage(t *testing.T)   { mongoOutage(t, 20000, 1000, 10*time.Second) }
func TestBrokerTrouble(t *testing.T) { brokerTrouble(t, 20000, 1000, "") }
func TestSIGTERM(t *testing.T)       { sigterm(t, 20000, 2000) }
func TestHostile(t *testing.T)       { hostile(t, 20000, 1000) }
func TestTwoRouters(t *testing.T)    { twoRouters(t, 20000, 1000, "") }
func TestSoak(t *testing.T)          { soak(t, 400_000) }

// TestSmallBrokerTrouble is the broker scenario at the short runs' size,
// for its figures where the full one does not finish (docs/reliability.md).
// It is not among the short runs: 1 run in 4 failed.
func TestSmallBrokerTrouble(t *testing.T) { brokerTrouble(t, 1500, 300, "") }

// The exactly-once suite (issue 13): the same faults with kafka.guarantee
// exactly_once fail on any duplicate line on the output topics, read
// committed.
func TestExactlyOnceSIGKILL(t *testing.T) { sigkill(t, 20000, 1000, 10, config.ExactlyOnce) }
func TestExactlyOnceBrokerTrouble(t *testing.T) {
	brokerTrouble(t, 20000, 1000, config.ExactlyOnce)
}
func TestExactlyOnceTwoRouters(t *testing.T) { twoRouters(t, 20000, 1000, config.ExactlyOnce) }
func TestSmallExactlyOnceBrokerTrouble(t *testing.T) {
	brokerTrouble(t, 1500, 300, config.ExactlyOnce)
}
