// Package httpxtest holds test helpers for upstream clients: a recording
// sleeper (no real sleeping), a frozen clock, and a counter reader.
package httpxtest

import (
	"context"
	"sync"
	"time"

	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/prometheus/client_golang/prometheus"
)

// Sleeper records requested waits and returns at once.
type Sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

// Sleep records d.
func (s *Sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

// Waits returns a copy of the recorded waits.
func (s *Sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// T0 is the frozen clock's time.
var T0 = time.Date(2025, 11, 21, 13, 30, 0, 0, time.UTC)

// Options returns Options with the sleeper, a frozen clock and no jitter
// (backoff = its ceiling), so waits are exact.
func Options(s *Sleeper, reg prometheus.Registerer) httpx.Options {
	return httpx.Options{
		Sleep:      s.Sleep,
		Now:        func() time.Time { return T0 },
		Jitter:     func(d time.Duration) time.Duration { return d },
		Registerer: reg,
	}
}

// Policy is a fast policy for tests: 3 retries, 100ms..1s backoff, no
// limiter, no concurrency cap, breaker after 5 failures.
func Policy() httpx.Policy {
	return httpx.Policy{
		Timeout:         5 * time.Second,
		MaxRetries:      3,
		BackoffBase:     100 * time.Millisecond,
		BackoffMax:      time.Second,
		MaxRetryAfter:   2 * time.Minute,
		BreakerFailures: 5,
		BreakerOpenFor:  time.Minute,
	}
}

// CounterValue sums the counter name over series matching labels.
func CounterValue(g prometheus.Gatherer, name string, labels map[string]string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
