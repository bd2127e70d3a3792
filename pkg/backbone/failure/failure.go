// Package failure holds the one error vocabulary shared by every upstream
// client and every stage, and the one decision made from it: ack + dead-letter
// (permanent) or nak with backoff (transient).
package failure

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Kind says what went wrong, in terms the pipeline can act on.
type Kind int

const (
	// KindTransient: worth retrying later (5xx, timeouts, connection errors).
	KindTransient Kind = iota
	// KindPermanent: retrying the same input can never succeed (bad input, 4xx).
	KindPermanent
	// KindNotFound: the upstream answered "nobody/nothing". A normal outcome.
	KindNotFound
	// KindRateLimited: the upstream asked us to wait RetryAfter.
	KindRateLimited
	// KindCreditsExhausted: the paid API has no credits left; stop paying.
	KindCreditsExhausted
	// KindUnauthorized: credentials are wrong or expired; an operator must act.
	KindUnauthorized
	// KindUncertain: a request that must not take effect twice (a POST to
	// an upstream that does not deduplicate) may have reached the upstream,
	// but its answer was lost: a timeout or dropped connection after it was
	// sent, or a 5xx such as 502/504 from a proxy that forwards first. It
	// is never resent blind: whoever owns the effect checks the upstream
	// first (the notifier reads the lead). Its fate is a nak, because the
	// owner records the attempt durably before sending, so the redelivery
	// checks instead of posting again.
	KindUncertain
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindPermanent:
		return "permanent"
	case KindNotFound:
		return "not_found"
	case KindRateLimited:
		return "rate_limited"
	case KindCreditsExhausted:
		return "credits_exhausted"
	case KindUnauthorized:
		return "unauthorized"
	case KindUncertain:
		return "uncertain"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified error. Op names the stage or upstream call
// ("diretrix.phone", "enricher.write"); it never contains personal data.
type Error struct {
	Kind       Kind
	Op         string
	RetryAfter time.Duration // only for KindRateLimited and KindCreditsExhausted
	Err        error
}

func (e *Error) Error() string {
	msg := e.Kind.String()
	if e.Op != "" {
		msg = e.Op + ": " + msg
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New builds a classified error.
func New(kind Kind, op string, err error) error {
	return &Error{Kind: kind, Op: op, Err: err}
}

// Permanent marks err as not worth retrying.
func Permanent(op string, err error) error { return New(KindPermanent, op, err) }

// Transient marks err as worth retrying.
func Transient(op string, err error) error { return New(KindTransient, op, err) }

// Uncertain marks a request whose outcome is unknown (KindUncertain).
func Uncertain(op string, err error) error { return New(KindUncertain, op, err) }

// NotFound builds a "nothing there" outcome.
func NotFound(op string) error { return New(KindNotFound, op, nil) }

// RateLimited builds a rate-limit error carrying how long to wait.
func RateLimited(op string, after time.Duration, err error) error {
	return &Error{Kind: KindRateLimited, Op: op, RetryAfter: after, Err: err}
}

// CreditsExhausted builds an out-of-credits error carrying how long to
// wait before trying again.
func CreditsExhausted(op string, after time.Duration, err error) error {
	return &Error{Kind: KindCreditsExhausted, Op: op, RetryAfter: after, Err: err}
}

// KindOf classifies any error. Unclassified errors are transient unless they
// are obviously caused by the caller giving up (context cancellation), which
// is transient as well: the message will be redelivered.
func KindOf(err error) Kind {
	if err == nil {
		return KindTransient
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return KindTransient
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return KindTransient
	}
	return KindTransient
}

// Is reports whether err is classified as kind.
func Is(err error, kind Kind) bool {
	return err != nil && KindOf(err) == kind
}

// RetryAfterOf returns the wait an upstream asked for, or 0.
func RetryAfterOf(err error) time.Duration {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.RetryAfter
	}
	return 0
}

// ErrUnavailable marks an outage: the upstream is known to be down (its
// circuit breaker is open), which says nothing about the message at hand.
// Errors wrapping it stay KindTransient.
var ErrUnavailable = errors.New("upstream unavailable")

// ShouldWait is the one decision that a failure is a wait, not a failure:
// an outage, a rate limit or exhausted credits. The stage holding the
// message waits (kept in progress, no delivery spent) and tries again; only
// real failures count toward the message's deliveries.
func ShouldWait(err error) bool {
	if err == nil {
		return false
	}
	switch KindOf(err) {
	case KindRateLimited, KindCreditsExhausted:
		return true
	case KindTransient:
		return errors.Is(err, ErrUnavailable)
	}
	return false
}

// ShouldNack is the single ack/nak decision of the pipeline: true means
// "nak and let JetStream redeliver with backoff", false means "this can never
// succeed: ack it and dead-letter it". Unauthorized goes to the dead-letter
// subject so that a bad token does not cause a retry storm; operators requeue
// once the secret is fixed. Uncertain is nak'ed: the stage that owns the
// effect recorded the attempt before sending, and its redelivery checks the
// upstream before acting again (or gives up with a permanent error that
// says so).
func ShouldNack(err error) bool {
	switch KindOf(err) {
	case KindTransient, KindRateLimited, KindCreditsExhausted, KindUncertain:
		return true
	default:
		return false
	}
}
