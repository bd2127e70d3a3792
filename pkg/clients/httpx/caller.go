package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// MaxBody bounds how much of a response is read; the largest real payload
// (a full Work API person) is a few tens of KiB.
const MaxBody = 16 << 20

var (
	// ErrBreakerOpen is wrapped (as Transient) when the circuit breaker
	// rejects a call without sending it. It is an outage
	// (failure.ErrUnavailable): stages wait for the upstream to come back
	// instead of spending the message's deliveries.
	ErrBreakerOpen = fmt.Errorf("circuit breaker open: %w", failure.ErrUnavailable)
	// ErrLocalRate is wrapped (as RateLimited) when our own limiter (the
	// process-local one or the shared Options.Limiter) cannot grant a slot
	// before the caller's deadline.
	ErrLocalRate = errors.New("local rate limit")
)

// Response is a fully read upstream answer.
type Response struct {
	Status   int
	Header   http.Header
	Body     []byte
	Received time.Time // from the Caller's clock; dates an HTTP-date Retry-After
	// Decoded is what the Classifier decoded from Body, left for the caller
	// so that a large body is not decoded twice (nil: nothing left).
	Decoded any
}

// Classifier turns an answer into nil (success) or a failure error. op is the
// operation name to put in the error.
type Classifier func(op string, r *Response) error

// Options are the injectable parts of a Caller; all are optional.
type Options struct {
	// Registerer receives the counters; nil = not registered. Registering the
	// same upstream twice reuses the existing collectors instead of panicking.
	Registerer prometheus.Registerer
	Logger     *zerolog.Logger
	// Sleep waits d or until ctx is done. Tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for the rate limiter and HTTP-date Retry-After.
	Now func() time.Time
	// Limiter, when set, is the rate budget every attempt draws from instead
	// of the process-local limiter built from Policy.Rate and Policy.Burst
	// (typically the credential's budget shared by all processes). An
	// upstream 429 then penalizes it by the Retry-After and the call is
	// retried once the budget allows, whatever the method and however long
	// the wait, unless ctx's deadline comes first.
	Limiter Limiter
	// MaxThrottled bounds the 429 answers one call absorbs with a Limiter;
	// they do not use Policy.MaxRetries. 0 = DefaultMaxThrottled.
	MaxThrottled int
	// Jitter picks the backoff in [0, max]; default is uniform (full jitter).
	Jitter   func(max time.Duration) time.Duration
	Classify Classifier // default DefaultClassify
	// Secrets are literal values (tokens, passwords) scrubbed from every error.
	Secrets []string
	// UnsentStatuses are the answers that prove the upstream did not act on
	// a POST or PATCH, so it may be sent again (or by another route). nil =
	// DefaultUnsentStatuses. Any other failed answer to a POST after it was
	// sent makes its outcome uncertain (failure.KindUncertain).
	UnsentStatuses []int
	// Unauthorized, when set, counts calls the upstream refused for the
	// credentials (401/403), e.g. leadflow_c2s_token_invalid_total.
	Unauthorized prometheus.Counter
}

// DefaultUnsentStatuses: 429 (rate limited before acting) and 503 (refused
// before acting, as the C2S gateway answers before it forwards).
var DefaultUnsentStatuses = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}

// Caller executes requests against one upstream under a Policy.
type Caller struct {
	name     string
	client   *http.Client
	policy   Policy
	sleep    func(context.Context, time.Duration) error
	now      func() time.Time
	jitter   func(time.Duration) time.Duration
	classify Classifier
	secrets  []string
	unsent   []int
	log      zerolog.Logger
	limiter  *rate.Limiter
	sem      *semaphore.Weighted
	breaker  *gobreaker.CircuitBreaker[*Response]
	shared   Limiter // replaces limiter when set
	maxThrot int
	m        *metrics
	unauth   prometheus.Counter
}

// New builds a Caller. client nil = a client with sane transport defaults.
func New(name string, client *http.Client, p Policy, o Options) *Caller {
	if client == nil {
		client = DefaultClient()
	}
	c := &Caller{
		name:     name,
		client:   client,
		policy:   p,
		sleep:    o.Sleep,
		now:      o.Now,
		jitter:   o.Jitter,
		classify: o.Classify,
		unsent:   o.UnsentStatuses,
		m:        newMetrics(o.Registerer),
		unauth:   o.Unauthorized,
	}
	if c.unsent == nil {
		c.unsent = DefaultUnsentStatuses
	}
	for _, s := range o.Secrets {
		if s != "" {
			c.secrets = append(c.secrets, s)
		}
	}
	if c.sleep == nil {
		c.sleep = Sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.jitter == nil {
		c.jitter = fullJitter
	}
	if c.classify == nil {
		c.classify = DefaultClassify
	}
	if o.Logger != nil {
		c.log = o.Logger.With().Str("upstream", name).Logger()
	} else {
		c.log = zerolog.Nop()
	}
	c.shared, c.maxThrot = o.Limiter, o.MaxThrottled
	if c.maxThrot <= 0 {
		c.maxThrot = DefaultMaxThrottled
	}
	if c.shared == nil && p.Rate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(p.Rate), max(p.Burst, 1))
	}
	if p.MaxConcurrent > 0 {
		c.sem = semaphore.NewWeighted(int64(p.MaxConcurrent))
	}
	if p.BreakerFailures > 0 {
		c.breaker = gobreaker.NewCircuitBreaker[*Response](gobreaker.Settings{
			Name:    name,
			Timeout: p.BreakerOpenFor,
			ReadyToTrip: func(cn gobreaker.Counts) bool {
				return cn.ConsecutiveFailures >= p.BreakerFailures
			},
			// Only an unhealthy upstream trips the breaker: 404s, 4xx and
			// rate limits are normal answers from a healthy one; a lost
			// answer to a POST (uncertain) is as unhealthy as to a GET.
			IsSuccessful: func(err error) bool {
				if err == nil {
					return true
				}
				k := failure.KindOf(err)
				return k != failure.KindTransient && k != failure.KindUncertain
			},
			// The caller giving up says nothing about the upstream.
			IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				c.m.breaker.WithLabelValues(name, to.String()).Inc()
				c.m.setState(name, to)
				c.log.Warn().Str("from", from.String()).Str("to", to.String()).Msg("circuit breaker state change")
			},
		})
	}
	c.m.init(name, c.breaker != nil)
	return c
}

// DefaultClient has bounded dial/TLS/header timeouts; the whole attempt is
// bounded by Policy.Timeout through the request context.
//
// Idle connections are dropped after IdleConnTimeout, well under the 60-75 s
// after which common servers and load balancers close them. A request that
// goes out on a connection the server is closing at that very moment fails
// after it was written, and a paid call or a post is never resent (its
// outcome is unknown: a lost paid reply, an uncertain post), so reusing a
// connection the server may be about to drop would turn an idle pause into
// such an outcome.
//
// Up to MaxIdlePerHost connections stay open between calls: as many as the
// callers keep in flight at once (a worker service's handlers, 32-64, times
// the calls a lead makes at once, such as the resolver's phone and e-mail
// look-ups), so a connection is not closed on its return only to be dialled
// again by the next call. With 32 (and net/http's 100 in all), the resolver
// spent 9 % of its CPU dialling Diretrix under load.
func DefaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit across hosts; each host's is MaxIdlePerHost
	t.MaxIdleConnsPerHost = MaxIdlePerHost
	t.IdleConnTimeout = IdleConnTimeout
	return &http.Client{Transport: t}
}

// MaxIdlePerHost is how many idle connections DefaultClient keeps per host.
const MaxIdlePerHost = 256

// IdleConnTimeout is how long DefaultClient keeps an idle connection.
const IdleConnTimeout = 30 * time.Second

// Name is the upstream name used in metrics and logs.
func (c *Caller) Name() string { return c.name }

// Policy returns the policy in force.
func (c *Caller) Policy() Policy { return c.policy }

// BreakerState is "closed", "half-open", "open", or "disabled".
func (c *Caller) BreakerState() string {
	if c.breaker == nil {
		return "disabled"
	}
	return c.breaker.State().String()
}

// Sleep waits d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// errCallerGone marks attempts aborted because the caller's context ended.
var errCallerGone = errors.New("caller context done")

// Do runs build (called once per attempt, with the attempt's context) and
// returns the classified answer. On error the Response is returned too when
// the upstream answered. Non-idempotent methods (POST, PATCH) are retried only
// when the upstream surely did not act: the connection could not be opened
// (refused, DNS failure), the breaker was open, or the answer is one of the
// UnsentStatuses (429, 503 by default). Any other failure after such a
// request was sent (a timeout, a dropped connection, a 500/502/504) is
// failure.KindUncertain and is never resent.
func (c *Caller) Do(ctx context.Context, op string, build func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	ctx, end := c.traceCall(ctx, op)
	resp, err := c.do(ctx, op, build)
	c.m.calls.WithLabelValues(c.name, outcome(err)).Inc()
	c.observeCall(err)
	end(resp, err)
	return resp, err
}

func (c *Caller) do(ctx context.Context, op string, build func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	throttles := 0
	for attempt := 0; ; attempt++ {
		resp, idempotent, err := c.attempt(ctx, op, build)
		if err == nil {
			return resp, nil
		}
		kind := failure.KindOf(err)
		if errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrLocalRate) ||
			(kind != failure.KindTransient && kind != failure.KindRateLimited) {
			return resp, err
		}
		if c.shared != nil && ctx.Err() == nil && throttled(resp, err) && throttles < c.maxThrot {
			// Pause everyone who shares the budget; the retry waits for it in
			// pace(). A 429 was not acted on, so any method may be resent.
			throttles++
			d := c.penalty(err, throttles)
			perr := c.shared.Penalize(ctx, d)
			if perr == nil {
				c.m.retries.WithLabelValues(c.name).Inc()
				c.log.Debug().Str("op", op).Int("throttled", throttles).Dur("pause", d).
					Msg("upstream throttled: shared budget paused, retrying")
				attempt-- // not a transient failure: keeps Policy.MaxRetries
				continue
			}
			// Fall back to the Retry-After handling below.
			c.log.Warn().Err(c.scrub(perr)).Str("op", op).Msg("could not pause the shared rate budget")
		}
		if ctx.Err() != nil {
			return resp, err // the caller gave up: no retry
		}
		if !idempotent && !c.unsentProof(resp, err) {
			return resp, err
		}
		if c.policy.PaidCalls && kind != failure.KindRateLimited && !NeverSent(err) {
			return resp, err // a lost reply of a charged call: not repeated here
		}
		if attempt >= c.policy.MaxRetries {
			return resp, err
		}
		wait := c.backoff(attempt)
		if ra := failure.RetryAfterOf(err); ra > 0 {
			if c.policy.MaxRetryAfter > 0 && ra > c.policy.MaxRetryAfter {
				return resp, err // too long to hold the caller: hand it back
			}
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return resp, err // we would wake up after the caller gave up
		}
		c.m.retries.WithLabelValues(c.name).Inc()
		traceRetry(ctx, attempt+1, wait, kind)
		c.log.Debug().Ctx(ctx).Str("op", op).Int("attempt", attempt+1).Dur("wait", wait).
			Str("kind", kind.String()).Msg("retrying upstream call")
		if serr := c.sleep(ctx, wait); serr != nil {
			return resp, failure.Transient(op, serr)
		}
	}
}

func (c *Caller) backoff(retry int) time.Duration {
	d := c.policy.BackoffBase
	for i := 0; i < retry && d < c.policy.BackoffMax; i++ {
		d *= 2
	}
	if c.policy.BackoffMax > 0 && d > c.policy.BackoffMax {
		d = c.policy.BackoffMax
	}
	return c.jitter(d)
}

// attempt is one paced, capped, breaker-guarded request.
func (c *Caller) attempt(ctx context.Context, op string, build func(ctx context.Context) (*http.Request, error)) (*Response, bool, error) {
	if err := c.pace(ctx, op); err != nil {
		return nil, true, err
	}
	if c.sem != nil {
		if err := c.sem.Acquire(ctx, 1); err != nil {
			return nil, true, failure.Transient(op, err)
		}
		defer c.sem.Release(1)
	}
	idempotent := true
	send := func() (*Response, error) {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if c.policy.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, c.policy.Timeout)
		}
		defer cancel()
		req, err := build(actx)
		if err != nil {
			return nil, failure.Permanent(op, c.scrub(err))
		}
		idempotent = isIdempotent(req.Method)
		if err := ctx.Err(); err != nil {
			// The caller gave up before anything was sent: not uncertain.
			return nil, failure.Transient(op, fmt.Errorf("%w: %w", errCallerGone, err))
		}
		defer c.timeAttempt(time.Now())
		hr, err := c.client.Do(req)
		if err != nil {
			return nil, c.uncertainUnlessUnsent(idempotent, nil, c.transportError(ctx, op, err))
		}
		defer hr.Body.Close()
		body, err := io.ReadAll(io.LimitReader(hr.Body, MaxBody+1))
		if err != nil {
			return nil, c.uncertainUnlessUnsent(idempotent, nil, c.transportError(ctx, op, err))
		}
		if len(body) > MaxBody {
			return nil, failure.Permanent(op, fmt.Errorf("response body over %d bytes", MaxBody))
		}
		r := &Response{Status: hr.StatusCode, Header: hr.Header, Body: body, Received: c.now()}
		return r, c.uncertainUnlessUnsent(idempotent, r, c.classify(op, r))
	}
	if c.breaker == nil {
		r, err := send()
		return r, idempotent, err
	}
	r, err := c.breaker.Execute(send)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, idempotent, failure.Transient(op, ErrBreakerOpen)
	}
	return r, idempotent, err
}

// pace takes a limiter slot, sleeping through the injected sleeper (or the
// shared Limiter's own wait). A wait that would outlast the caller's deadline
// is refused up front; without a deadline any wait is accepted.
func (c *Caller) pace(ctx context.Context, op string) error {
	if c.shared != nil {
		if spendHeld(ctx, c.shared) {
			return nil // taken ahead of the call (Reserve)
		}
		err := c.shared.Wait(ctx)
		switch {
		case err == nil:
			return nil
		case failure.Is(err, failure.KindRateLimited):
			return failure.RateLimited(op, failure.RetryAfterOf(err), fmt.Errorf("%w: %w", ErrLocalRate, c.scrub(err)))
		default:
			return failure.Transient(op, c.scrub(err))
		}
	}
	if c.limiter == nil {
		return nil
	}
	now := c.now()
	r := c.limiter.ReserveN(now, 1)
	if !r.OK() {
		return failure.RateLimited(op, 0, ErrLocalRate)
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
		r.CancelAt(now)
		return failure.RateLimited(op, d, ErrLocalRate)
	}
	if err := c.sleep(ctx, d); err != nil {
		r.CancelAt(c.now())
		return failure.Transient(op, err)
	}
	return nil
}

// transportError classifies a failed send. The caller's own cancellation is
// marked so that the breaker ignores it.
func (c *Caller) transportError(ctx context.Context, op string, err error) error {
	err = c.scrub(redactURLError(err))
	if ctx.Err() != nil {
		return failure.Transient(op, fmt.Errorf("%w: %w", errCallerGone, err))
	}
	return failure.Transient(op, err)
}

// scrub removes literal secrets from an error's text, keeping the chain for
// errors.Is/As.
func (c *Caller) scrub(err error) error {
	if err == nil || len(c.secrets) == 0 {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range c.secrets {
		clean = strings.ReplaceAll(clean, s, "REDACTED")
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// redactURLError replaces the URL inside a *url.Error (which net/http fills
// with the full request URL, query tokens and path-embedded phones or emails
// included) by scheme://host.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	cp := *ue
	cp.URL = hostOnly(ue.URL)
	return &cp
}

func hostOnly(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "upstream"
	}
	return u.Scheme + "://" + u.Host
}

// RedactURL renders u for logs with the values of the named query
// parameters replaced (token, key, ...) and any userinfo removed.
func RedactURL(u *url.URL, secretParams ...string) string {
	if u == nil {
		return ""
	}
	cp := *u
	cp.User = nil
	if cp.RawQuery != "" {
		q := cp.Query()
		for k := range q {
			for _, s := range secretParams {
				if strings.EqualFold(k, s) {
					q[k] = []string{"REDACTED"}
				}
			}
		}
		cp.RawQuery = q.Encode()
	}
	return cp.String()
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch:
		return false
	}
	return true
}

// unsentProof reports whether a failed request provably never took effect
// upstream: the connection could not be opened (connection refused, DNS
// failure, dial timeout: nothing was written), or the upstream answered one
// of the UnsentStatuses.
func (c *Caller) unsentProof(r *Response, err error) bool {
	if r != nil {
		return slices.Contains(c.unsent, r.Status)
	}
	return IsDialError(err)
}

// IsDialError reports whether err is a failure to open the connection
// (refused, DNS failure, dial timeout): the request was never written.
func IsDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// uncertainUnlessUnsent is the one place where a failed non-idempotent
// request becomes uncertain: a transient failure after it was sent, without
// proof that the upstream did not act, is failure.KindUncertain. Reads keep
// their kind.
func (c *Caller) uncertainUnlessUnsent(idempotent bool, r *Response, err error) error {
	if err == nil || idempotent || failure.KindOf(err) != failure.KindTransient || c.unsentProof(r, err) {
		return err
	}
	var fe *failure.Error
	if errors.As(err, &fe) {
		cp := *fe
		cp.Kind = failure.KindUncertain
		return &cp
	}
	return failure.Uncertain("", err)
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBreakerOpen):
		return "breaker_open"
	}
	return failure.KindOf(err).String()
}

// DefaultClassify is the common HTTP mapping: 2xx ok, 404 NotFound, 401/403
// Unauthorized, 429 RateLimited (with Retry-After), other 4xx Permanent, and
// everything else (5xx, unexpected 1xx/3xx) Transient.
func DefaultClassify(op string, r *Response) error {
	s := r.Status
	switch {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusNotFound:
		return failure.NotFound(op)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return failure.New(failure.KindUnauthorized, op, statusErr(s))
	case s == http.StatusTooManyRequests:
		return failure.RateLimited(op, r.RetryAfter(), statusErr(s))
	case s >= 400 && s < 500:
		return failure.Permanent(op, statusErr(s))
	}
	return failure.Transient(op, statusErr(s))
}

// RetryAfter is the parsed Retry-After header, or 0.
func (r *Response) RetryAfter() time.Duration {
	now := r.Received
	if now.IsZero() {
		now = time.Now()
	}
	d, _ := ParseRetryAfter(r.Header.Get("Retry-After"), now)
	return d
}

// HTTPStatusError carries the upstream status code (never the body, which may
// hold personal data).
type HTTPStatusError struct{ Status int }

func (e *HTTPStatusError) Error() string { return fmt.Sprintf("HTTP %d", e.Status) }

func statusErr(s int) error { return &HTTPStatusError{Status: s} }

// StatusOf returns the HTTP status carried by err, or 0.
func StatusOf(err error) int {
	var he *HTTPStatusError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// BaseURL validates an API root (def when raw is empty) and strips trailing
// slashes. The error never echoes the URL, which may carry credentials.
func BaseURL(raw, def string) (string, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("base URL must be an absolute http(s) URL")
	}
	return strings.TrimRight(raw, "/"), nil
}
