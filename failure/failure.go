// Package failure classifies errors by what the pipeline should do about them.
//
// A handler error is one of three kinds:
//   - permanent: the message itself is at fault (bad input, an unknown product,
//     a partner that refuses it). Retrying cannot help; it goes to the poison
//     queue at once.
//   - unavailable: a dependency of the pipeline (MongoDB, the broker) cannot be
//     reached. The message is never poisoned for it; processing pauses and
//     resumes when the dependency is back.
//   - transient: anything else. It is retried with backoff, and poisoned only
//     once the retries are exhausted.
package failure

import (
	"context"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Kind names a class of permanent error. Poison-queue filters are configured
// with these names.
type Kind string

// The permanent kinds the pipeline produces.
const (
	InvalidInput     Kind = "invalid_input"     // the payload is not a valid line
	UnknownReference Kind = "unknown_reference" // a product or location id missing from the metadata
	NoPartner        Kind = "no_partner"        // no partner is configured for an external line
	PartnerRejected  Kind = "partner_rejected"  // a partner answered 4xx
	// Conflict: the line contradicts what was already delivered for its
	// order (a reused order id); nothing delivered is overwritten.
	Conflict Kind = "conflict"
	// Late: the line is older than an aggregation's allowed lateness, so
	// it can no longer be counted exactly once.
	Late Kind = "late"
)

// Kinds lists every permanent kind, for validating configuration.
var Kinds = []Kind{InvalidInput, UnknownReference, NoPartner, PartnerRejected, Conflict, Late}

type permanentError struct {
	kind Kind
	err  error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a permanent error of the given kind.
func Permanent(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{kind: kind, err: err}
}

// PermanentKind returns the kind of a permanent error, and false for any other
// error.
func PermanentKind(err error) (Kind, bool) {
	var p *permanentError
	if errors.As(err, &p) {
		return p.kind, true
	}
	return "", false
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// Unavailable marks err as the unavailability of a dependency.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &unavailableError{err: err}
}

// IsUnavailable reports whether err is, or wraps, an unavailability, or a
// context that ended (the process is stopping: the message must be retried
// later, not judged).
func IsUnavailable(err error) bool {
	var u *unavailableError
	return errors.As(err, &u) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// MaxReason bounds a reason where it is stored or sent (a poison header, a
// status record): a reason quotes input, and input can be large.
const MaxReason = 1024

// Reason returns s cut to MaxReason bytes, on a rune boundary, saying how
// long it was.
func Reason(s string) string {
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason - 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes in all)"
}
