package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limit is a token bucket per credential: Burst requests at once, refilled
// at Rate requests per Per. The zero value (Rate 0) sets no limit. Over
// HTTP and in JSON: {"rate":10,"per":"1m","burst":10}; "per" is a Go
// duration string or a number of milliseconds.
type Limit struct {
	Rate  float64       `json:"rate"`  // requests per Per; <= 0: no limit
	Per   time.Duration `json:"-"`     // default 1s
	Burst int           `json:"burst"` // bucket size; default 1
}

// PerSecond is a limit of rate requests a second with the given burst.
func PerSecond(rate float64, burst int) Limit {
	return Limit{Rate: rate, Per: time.Second, Burst: burst}
}

// PerMinute is a limit of rate requests a minute with the given burst.
func PerMinute(rate float64, burst int) Limit {
	return Limit{Rate: rate, Per: time.Minute, Burst: burst}
}

// Enabled reports whether the limit refuses anything.
func (l Limit) Enabled() bool { return l.Rate > 0 }

func (l Limit) withDefaults() Limit {
	if !l.Enabled() {
		return Limit{}
	}
	if l.Per <= 0 {
		l.Per = time.Second
	}
	if l.Burst <= 0 {
		l.Burst = 1
	}
	return l
}

// interval is the time one token takes to come back.
func (l Limit) interval() time.Duration {
	return max(time.Duration(float64(l.Per)/l.Rate), 1)
}

// String is the form ParseLimit reads, e.g. "10/1m0s,burst=10", or "off".
func (l Limit) String() string {
	if !l.Enabled() {
		return "off"
	}
	l = l.withDefaults()
	return strconv.FormatFloat(l.Rate, 'g', -1, 64) + "/" + l.Per.String() + ",burst=" + strconv.Itoa(l.Burst)
}

// ParseLimit reads "RATE[/PER][,burst=N]": "10/1m,burst=10", "10/m",
// "0.5/s,burst=2", "5" (per second). PER is a Go duration or one of the
// units s, m, h. "", "0" and "off" mean no limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "off" {
		return Limit{}, nil
	}
	var l Limit
	spec, burst, hasBurst := strings.Cut(s, ",")
	rate, per, hasPer := strings.Cut(spec, "/")
	r, err := strconv.ParseFloat(strings.TrimSpace(rate), 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return Limit{}, fmt.Errorf("limit %q: bad rate %q", s, rate)
	}
	l.Rate = r
	if hasPer {
		per = strings.TrimSpace(per)
		if per != "" && strings.Trim(per, "smh") == "" && len(per) == 1 {
			per = "1" + per
		}
		d, err := time.ParseDuration(per)
		if err != nil || d <= 0 {
			return Limit{}, fmt.Errorf("limit %q: bad period %q", s, per)
		}
		l.Per = d
	}
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burst), "burst=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Limit{}, fmt.Errorf("limit %q: want ,burst=N", s)
		}
		l.Burst = n
	}
	return l.withDefaults(), nil
}

// MarshalJSON writes Per as a Go duration string.
func (l Limit) MarshalJSON() ([]byte, error) {
	type alias Limit
	return json.Marshal(struct {
		alias
		Per string `json:"per"`
	}{alias(l), l.Per.String()})
}

// UnmarshalJSON merges into l: keys that are absent keep their value.
func (l *Limit) UnmarshalJSON(b []byte) error {
	type alias Limit
	aux := struct {
		*alias
		Per json.RawMessage `json:"per"`
	}{alias: (*alias)(l)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	if aux.Per != nil {
		d, err := parseDuration(aux.Per)
		if err != nil {
			return err
		}
		l.Per = d
	}
	return nil
}

// LimitSet holds start-up limits. The gateway has none of its own: it
// spends the C2S token, so its calls draw from the C2S bucket.
type LimitSet struct {
	C2S      Limit `json:"c2s"` // C2S and gateway together, per C2S token
	Diretrix Limit `json:"diretrix"`
	WorkAPI  Limit `json:"workapi"`
}

// LimitStats is what a Limiter recorded for one credential since start,
// SetLimit or Reset.
type LimitStats struct {
	Admitted int64 `json:"admitted"` // let through (every request when no limit is set)
	Rejected int64 `json:"rejected"` // answered 429 by the bucket
	// MaxInWindow is the most requests admitted within any window of the
	// length asked for (by default the limit's Per).
	MaxInWindow int `json:"max_in_window"`
}

// Limiter is one token bucket per credential, with a record of what it
// admitted. One Limiter serves C2S and the gateway together; Diretrix and the
// Work API have their own. It records admissions whether or not a limit is
// set, so a test can check the product's own pacing.
type Limiter struct {
	now      func() time.Time
	maxTimes int

	mu      sync.Mutex
	limit   Limit
	buckets map[string]*bucket
}

type bucket struct {
	tat      time.Time // theoretical arrival time (GCRA form of the token bucket)
	times    []time.Time
	admitted int64
	rejected int64
}

func newLimiter(l Limit, now func() time.Time, maxTimes int) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, maxTimes: maxTimes, limit: l.withDefaults(), buckets: map[string]*bucket{}}
}

// Limit returns the limit in force, with defaults applied.
func (l *Limiter) Limit() Limit {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// SetLimit replaces the limit; every bucket starts full again. Recordings
// are kept.
func (l *Limiter) SetLimit(lim Limit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit = lim.withDefaults()
	for _, b := range l.buckets {
		b.tat = time.Time{}
	}
}

// Reset refills every bucket and clears the recordings; the limit is kept.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets = map[string]*bucket{}
}

// take admits one request of cred, or refuses it with the whole seconds
// until a token is back (at least 1).
func (l *Limiter) take(cred string) (ok bool, retryAfter int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[cred]
	if b == nil {
		b = &bucket{}
		l.buckets[cred] = b
	}
	if lim := l.limit; lim.Enabled() {
		// A token bucket in GCRA form: integer time, no float drift.
		iv := lim.interval()
		tol := time.Duration(lim.Burst-1) * iv
		tat := b.tat
		if tat.Before(now) {
			tat = now
		}
		if wait := tat.Sub(now) - tol; wait > 0 {
			b.rejected++
			return false, max(1, int(math.Ceil(wait.Seconds())))
		}
		b.tat = tat.Add(iv)
	}
	b.admitted++
	if l.maxTimes > 0 && len(b.times) >= l.maxTimes {
		b.times = append(b.times[:0], b.times[len(b.times)/2:]...)
	}
	b.times = append(b.times, now)
	return true, 0
}

// Admitted returns when cred's admitted requests arrived (by the limiter's
// clock), oldest first; only the last MaxRequests or so are kept.
func (l *Limiter) Admitted(cred string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[cred]; b != nil {
		return slices.Clone(b.times)
	}
	return nil
}

// AdmittedCount is how many requests of cred were admitted.
func (l *Limiter) AdmittedCount(cred string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[cred]; b != nil {
		return b.admitted
	}
	return 0
}

// Rejected is how many requests of cred the bucket answered 429.
func (l *Limiter) Rejected(cred string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[cred]; b != nil {
		return b.rejected
	}
	return 0
}

// MaxAdmittedIn is the most requests of cred admitted within any window
// [t, t+window) (window <= 0: the limit's Per, or 1s without a limit). With
// a limit set it never exceeds Burst + Rate×window/Per.
func (l *Limiter) MaxAdmittedIn(cred string, window time.Duration) int {
	return maxInWindow(l.Admitted(cred), l.window(window))
}

func (l *Limiter) window(w time.Duration) time.Duration {
	if w > 0 {
		return w
	}
	if p := l.Limit().Per; p > 0 {
		return p
	}
	return time.Second
}

// Stats returns the recordings of every credential seen, with MaxInWindow
// over window (<= 0: the limit's Per).
func (l *Limiter) Stats(window time.Duration) map[string]LimitStats {
	window = l.window(window)
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]LimitStats, len(l.buckets))
	for k, b := range l.buckets {
		out[k] = LimitStats{Admitted: b.admitted, Rejected: b.rejected, MaxInWindow: maxInWindow(b.times, window)}
	}
	return out
}

func maxInWindow(times []time.Time, window time.Duration) int {
	times = slices.Clone(times)
	slices.SortFunc(times, time.Time.Compare)
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= window {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// limitsRoutes serves /_sim/limits: GET (limit and per-credential stats;
// ?window= for MaxInWindow, ?times=1 adds admission times), PUT (replace),
// PATCH (merge), DELETE (no limit).
func (b *base) limitsRoutes() {
	b.admin.HandleFunc("GET /_sim/limits", func(w http.ResponseWriter, r *http.Request) {
		var window time.Duration
		if v := r.URL.Query().Get("window"); v != "" {
			d, err := parseDuration(json.RawMessage(strconv.Quote(v)))
			if err != nil {
				d, err = parseDuration(json.RawMessage(v))
			}
			if err != nil {
				writeJSON(w, 400, map[string]string{"error": err.Error()})
				return
			}
			window = d
		}
		out := map[string]any{"limit": b.lim.Limit(), "window": b.lim.window(window).String(),
			"credentials": b.lim.Stats(window)}
		if r.URL.Query().Get("times") != "" {
			times := map[string][]time.Time{}
			for k := range b.lim.Stats(window) {
				times[k] = b.lim.Admitted(k)
			}
			out["admitted_at"] = times
		}
		writeJSON(w, 200, out)
	})
	put := func(merge bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var l Limit
			if merge {
				l = b.lim.Limit()
			}
			if err := json.NewDecoder(r.Body).Decode(&l); err != nil {
				writeJSON(w, 400, map[string]string{"error": err.Error()})
				return
			}
			b.lim.SetLimit(l)
			writeJSON(w, 200, b.lim.Limit())
		}
	}
	b.admin.HandleFunc("PUT /_sim/limits", put(false))
	b.admin.HandleFunc("PATCH /_sim/limits", put(true))
	b.admin.HandleFunc("DELETE /_sim/limits", func(w http.ResponseWriter, r *http.Request) {
		b.lim.SetLimit(Limit{})
		writeJSON(w, 200, b.lim.Limit())
	})
}
