package httpx

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// Limiter is a rate budget that outlives one Caller and one process:
// typically one per upstream credential, shared through Postgres by every
// process and replica that spends it (pkg/store/budget). When
// Options.Limiter is set, the Caller takes a slot from it before every
// attempt instead of from its process-local token bucket (Policy.Rate,
// Policy.Burst), and an upstream 429 penalizes it.
type Limiter interface {
	// Wait returns nil when one request may be sent, or an error when ctx
	// ends first. When ctx has a deadline that the next slot comes after,
	// Wait takes no slot and returns a failure.KindRateLimited error whose
	// failure.RetryAfterOf is the wait it would have needed. Without a
	// deadline it waits as long as the budget asks: a wait is not a failure.
	Wait(ctx context.Context) error
	// Penalize keeps everyone sharing the budget from sending for d (an
	// upstream 429's Retry-After).
	Penalize(ctx context.Context, d time.Duration) error
}

// DefaultMaxThrottled is how many 429 answers one call absorbs, with a
// shared Limiter, before the 429 is returned (Options.MaxThrottled).
const DefaultMaxThrottled = 10

// Limiter returns the shared budget the Caller draws from, or nil when it
// paces itself (or not at all).
func (c *Caller) Limiter() Limiter { return c.shared }

// throttled reports an upstream 429 answer that the pipeline may resend: the
// upstream did not act on the request, whatever the method.
func throttled(resp *Response, err error) bool {
	return resp != nil && resp.Status == http.StatusTooManyRequests && failure.Is(err, failure.KindRateLimited)
}

// penalty is how long a 429 pauses the shared budget: its Retry-After, or
// without one the backoff ceiling of the n-th throttle (at least a second).
func (c *Caller) penalty(err error, n int) time.Duration {
	if ra := failure.RetryAfterOf(err); ra > 0 {
		return ra
	}
	d := c.policy.BackoffBase
	for i := 1; i < n && d < c.policy.BackoffMax; i++ {
		d *= 2
	}
	if c.policy.BackoffMax > 0 && d > c.policy.BackoffMax {
		d = c.policy.BackoffMax
	}
	return max(d, time.Second)
}

// slotKey carries a slot taken ahead of a call (Reserve).
type slotKey struct{}

type heldSlot struct {
	lim  Limiter
	used atomic.Bool
}

// Reserve takes one slot from lim (waiting as Limiter.Wait does) and
// returns a context that carries it: the next attempt paced by lim through
// that context spends the held slot instead of taking another. A caller
// uses it to wait for the budget before it takes something scarce that it
// must hold across the call (a connection, a lock): the wait happens while
// holding nothing. room (at most half the time left) is kept free before
// ctx's deadline for the call itself: a slot later than deadline - room is
// refused up front, as a failure.KindRateLimited error carrying the wait.
// A nil lim returns ctx unchanged. A held slot that no call spends is lost,
// as a sent request's would be.
func Reserve(ctx context.Context, lim Limiter, room time.Duration) (context.Context, error) {
	if lim == nil {
		return ctx, nil
	}
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok && room > 0 {
		// At most half the time left: a room as long as the whole try
		// would refuse every slot, and the waiting would never end.
		room = min(room, time.Until(dl)/2)
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-room))
		defer cancel()
	}
	if err := lim.Wait(wctx); err != nil {
		if ctx.Err() == nil && wctx.Err() != nil && !failure.Is(err, failure.KindRateLimited) {
			// Our own margin ran out while waiting: still a wait.
			return ctx, failure.RateLimited("rate budget", time.Second, err)
		}
		return ctx, err
	}
	return context.WithValue(ctx, slotKey{}, &heldSlot{lim: lim}), nil
}

// spendHeld reports whether ctx carries an unspent slot of lim, and spends it.
func spendHeld(ctx context.Context, lim Limiter) bool {
	s, ok := ctx.Value(slotKey{}).(*heldSlot)
	return ok && s.lim == lim && s.used.CompareAndSwap(false, true)
}
