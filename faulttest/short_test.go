//go:build !fault

package faulttest

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/config"
)

// The short versions run in every `go test ./...`.

func TestShortSIGKILL(t *testing.T)     { sigkill(t, 1500, 300, 5, "") }
func TestShortMongoOutage(t *testing.T) { mongoOutage(t, 1500, 300, 10*time.Second) }
func TestShortSIGTERM(t *testing.T)     { sigterm(t, 1500, 500) }
func TestShortTwoRouters(t *testing.T)  { twoRouters(t, 1500, 300, "") }

// TestShortHostile: an oversized line, a read storm and two SIGKILLs 3 s
// apart, with dynamic membership (issue 14).
func TestShortHostile(t *testing.T) { hostile(t, 1500, 300) }

// The exactly-once versions fail on any duplicate line on the output topics.
func TestShortExactlyOnceSIGKILL(t *testing.T) { sigkill(t, 1500, 300, 5, config.ExactlyOnce) }
func TestShortExactlyOnceTwoRouters(t *testing.T) {
	twoRouters(t, 1500, 300, config.ExactlyOnce)
}
