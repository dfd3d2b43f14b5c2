// Package middleware holds orderflow's router middleware, one per file: the
// poison queue that records where a message came from, retry that never
// retries a permanent error, and a throttle. The other middleware the
// configuration offers (correlation id, recoverer, timeout) are Watermill's.
package middleware

import "github.com/orderflow/orderflow/failure"

// Classifier says which errors are permanent: those marked with one of the
// listed kinds. The retry and poison queue middleware of a stack share one,
// so they agree on what not to retry.
type Classifier struct {
	Permanent []failure.Kind
}

// IsPermanent reports whether err is permanent for this classifier.
func (c Classifier) IsPermanent(err error) bool {
	kind, ok := failure.PermanentKind(err)
	if !ok {
		return false
	}
	for _, k := range c.Permanent {
		if k == kind {
			return true
		}
	}
	return false
}

// AllPermanent classifies every permanent kind as permanent.
var AllPermanent = Classifier{Permanent: failure.Kinds}
