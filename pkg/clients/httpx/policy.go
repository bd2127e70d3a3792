// Package httpx is the shared resilience layer for every upstream: per-attempt
// timeout, retries with full-jitter backoff that honour Retry-After, a circuit
// breaker, a rate limiter and a concurrency cap, with Prometheus counters.
// Every error it returns is classified with pkg/failure and free of secrets.
package httpx

import "time"

// Policy is how hard we lean on one upstream. Zero values disable a feature:
// Rate 0 = unlimited, MaxConcurrent 0 = uncapped, BreakerFailures 0 = no breaker.
type Policy struct {
	Timeout         time.Duration // per attempt, including reading the body
	MaxRetries      int           // retries after the first attempt
	BackoffBase     time.Duration // first backoff ceiling; doubles per retry
	BackoffMax      time.Duration // backoff ceiling
	MaxRetryAfter   time.Duration // a longer Retry-After is returned as RateLimited instead of slept
	Rate            float64       // requests per second
	Burst           int
	MaxConcurrent   int
	BreakerFailures uint32        // consecutive failures that open the breaker
	BreakerOpenFor  time.Duration // open period before a half-open probe
	// PaidCalls: every request that reaches the upstream is charged, so a
	// retry is made only when the request provably never reached it
	// (NeverSent) or was refused with 429; a lost reply is returned to the
	// caller's attempts ledger instead of being paid for again here.
	PaidCalls bool
}

// C2SPolicy paces direct C2S calls to the documented ~10 requests/minute per
// token. Retry-After waits over 10 s are handed back to the pipeline (nak with
// delay) rather than slept inside a consumer's ack window.
func C2SPolicy() Policy {
	return Policy{
		Timeout:         15 * time.Second,
		MaxRetries:      3,
		BackoffBase:     500 * time.Millisecond,
		BackoffMax:      10 * time.Second,
		MaxRetryAfter:   10 * time.Second,
		Rate:            10.0 / 60.0,
		Burst:           2,
		MaxConcurrent:   4,
		BreakerFailures: 5,
		BreakerOpenFor:  30 * time.Second,
	}
}

// GatewayPolicy: the gateway paces C2S itself, so we only keep it from being
// flooded and fail over quickly (few retries, short timeout).
func GatewayPolicy() Policy {
	return Policy{
		Timeout:         10 * time.Second,
		MaxRetries:      1,
		BackoffBase:     200 * time.Millisecond,
		BackoffMax:      2 * time.Second,
		MaxRetryAfter:   10 * time.Second,
		Rate:            5,
		Burst:           10,
		MaxConcurrent:   8,
		BreakerFailures: 5,
		BreakerOpenFor:  30 * time.Second,
	}
}

// DiretrixPolicy: no documented limit, so a modest pace.
func DiretrixPolicy() Policy {
	return Policy{
		Timeout:         10 * time.Second,
		MaxRetries:      2,
		BackoffBase:     300 * time.Millisecond,
		BackoffMax:      5 * time.Second,
		MaxRetryAfter:   10 * time.Second,
		Rate:            5,
		Burst:           5,
		MaxConcurrent:   4,
		BreakerFailures: 5,
		BreakerOpenFor:  30 * time.Second,
	}
}

// WorkAPIPolicy is conservative: the account is paced (integrators waited
// 2-3 s between calls) and every call that reaches it costs credits, so only
// calls that never reached it are retried here (PaidCalls).
func WorkAPIPolicy() Policy {
	return Policy{
		Timeout:         45 * time.Second,
		MaxRetries:      1,
		BackoffBase:     2 * time.Second,
		BackoffMax:      30 * time.Second,
		MaxRetryAfter:   10 * time.Second,
		Rate:            0.5,
		Burst:           1,
		MaxConcurrent:   2,
		BreakerFailures: 3,
		BreakerOpenFor:  60 * time.Second,
		PaidCalls:       true,
	}
}

// IsZero reports whether p is the zero Policy (callers then use a default).
func (p Policy) IsZero() bool { return p == Policy{} }
