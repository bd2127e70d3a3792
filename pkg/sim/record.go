package sim

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one request as a simulator saw it.
type Request struct {
	Time     time.Time     `json:"time"`
	Method   string        `json:"method"`
	Path     string        `json:"path"` // with the query; the Work API token removed
	Status   int           `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	// Fault names an injected fault: down, 429, hang, error, malformed,
	// timeout (the client left during latency), token_expired,
	// out_of_credits, bad_token, rate_limit (the token bucket answered 429),
	// lost_502, lost_hang, lost_drop (handled, then the reply was lost).
	// Status 0 means no answer was written.
	Fault string `json:"fault,omitempty"`
	// Handled is, for a lost reply, the status the handler answered and the
	// client never saw (201: the message was posted).
	Handled int `json:"handled_status,omitempty"`
	// Via is "gateway" for C2S calls the gateway made on a client's behalf.
	Via string `json:"via,omitempty"`
}

// recorder keeps the last max requests in a ring; the mutex covers only the
// slot write, never encoding.
type recorder struct {
	mu         sync.Mutex
	buf        []Request
	next       int
	total      int64
	max        int
	stripToken bool

	lost        atomic.Int64 // replies lost after the handler ran
	rateLimited atomic.Int64 // 429s answered by the token bucket
}

type ctxKey int

const viaKey ctxKey = 0

func via(ctx context.Context) string {
	s, _ := ctx.Value(viaKey).(string)
	return s
}

func (rc *recorder) add(r *http.Request, start time.Time, status int, fault string, handled int) {
	p := r.URL.Path
	if q := r.URL.RawQuery; q != "" {
		if rc.stripToken && strings.Contains(q, "token") {
			v, _ := url.ParseQuery(q)
			v.Del("token")
			q = v.Encode()
		}
		if q != "" {
			p += "?" + q
		}
	}
	req := Request{Time: start, Method: r.Method, Path: p, Status: status,
		Duration: time.Since(start), Fault: fault, Handled: handled, Via: via(r.Context())}
	rc.mu.Lock()
	if len(rc.buf) < rc.max {
		rc.buf = append(rc.buf, req)
	} else {
		rc.buf[rc.next] = req
	}
	rc.next = (rc.next + 1) % rc.max
	rc.total++
	rc.mu.Unlock()
}

// list returns the kept requests, oldest first.
func (rc *recorder) list() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Request, 0, len(rc.buf))
	if len(rc.buf) == rc.max {
		out = append(out, rc.buf[rc.next:]...)
		return append(out, rc.buf[:rc.next]...)
	}
	return append(out, rc.buf...)
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.buf, rc.next, rc.total = nil, 0, 0
	rc.lost.Store(0)
	rc.rateLimited.Store(0)
}

func (rc *recorder) count() int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.total
}

// base is what every simulator shares: faults, the rate limit, the request
// log and the /_sim admin endpoints. Its exported methods are promoted.
type base struct {
	name    string
	inj     *injector
	rec     *recorder
	admin   *http.ServeMux
	errBody func(w http.ResponseWriter, status int, msg string)
	resets  []func()

	// lim is the simulator's bucket (the gateway shares C2S's); enforce is
	// false where another simulator checks it (the gateway: C2S does). cred
	// names the request's credential, "" when it has none that is valid.
	lim        *Limiter
	enforce    bool
	cred       func(*http.Request) string
	lostCharge func(cpf string) // Work API: a paid answer was lost
}

func newBase(name string, seed uint64, f Faults, maxReq int, stop <-chan struct{}, errBody func(http.ResponseWriter, int, string)) base {
	b := base{name: name, inj: newInjector(seed, f, stop), rec: &recorder{max: maxReq},
		admin: http.NewServeMux(), errBody: errBody,
		lim: newLimiter(Limit{}, nil, maxReq), cred: func(*http.Request) string { return "" }}
	return b
}

// withLimiter makes the simulator check lim (enforce) or only show it.
func (b base) withLimiter(lim *Limiter, enforce bool) base {
	b.lim, b.enforce = lim, enforce
	return b
}

// routes registers the shared admin endpoints; b must be at its final address.
func (b *base) routes() {
	b.admin.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, b.Faults()) })
	b.admin.HandleFunc("PUT /_sim/faults", b.putFaults(false))
	b.admin.HandleFunc("PATCH /_sim/faults", b.putFaults(true))
	b.admin.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		b.ClearFaults()
		writeJSON(w, 200, b.Faults())
	})
	b.admin.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, r *http.Request) {
		list := b.Requests()
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n >= 0 && n < len(list) {
			list = list[len(list)-n:]
		}
		writeJSON(w, 200, map[string]any{"total": b.RequestCount(), "requests": list})
	})
	b.admin.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		b.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	b.admin.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, b.Stats()) })
	b.limitsRoutes()
}

// Stats are a simulator's counters since start or Reset.
type Stats struct {
	Requests    int64 `json:"requests"`
	LostReplies int64 `json:"lost_replies"`
	RateLimited int64 `json:"rate_limited"`
}

// Stats returns the simulator's counters.
func (b *base) Stats() Stats {
	return Stats{Requests: b.RequestCount(), LostReplies: b.LostReplies(), RateLimited: b.RateLimited()}
}

// LostReplies is how many requests were handled in full (message posted,
// person served) and then had their reply lost (lost_reply_* faults). For
// C2S this includes the gateway's in-process calls.
func (b *base) LostReplies() int64 { return b.rec.lost.Load() }

// RateLimited is how many 429s this simulator answered because the token
// bucket was empty (not Burst429). C2S counts its direct callers; the
// gateway counts the ones it passed on from the shared C2S bucket.
func (b *base) RateLimited() int64 { return b.rec.rateLimited.Load() }

// Limiter is the simulator's token bucket; the gateway's is C2S's.
func (b *base) Limiter() *Limiter { return b.lim }

// SetLimit replaces the rate limit (the gateway's sets the shared C2S one);
// buckets start full.
func (b *base) SetLimit(l Limit) { b.lim.SetLimit(l) }

// Limit returns the rate limit in force, defaults applied.
func (b *base) Limit() Limit { return b.lim.Limit() }

func (b *base) putFaults(merge bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if merge {
			f = b.Faults()
		}
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		b.SetFaults(f)
		writeJSON(w, 200, b.Faults())
	}
}

// SetFaults replaces the simulator's faults (Burst429 restarts its count).
func (b *base) SetFaults(f Faults) { b.inj.set(f) }

// UpdateFaults changes the faults in place, atomically.
func (b *base) UpdateFaults(fn func(*Faults)) { b.inj.update(fn) }

// Faults returns the current faults (Burst429 = 429s still to come).
func (b *base) Faults() Faults { return b.inj.get() }

// ClearFaults makes the simulator healthy again.
func (b *base) ClearFaults() { b.inj.set(Faults{}) }

// Requests returns the logged requests, oldest first (the last MaxRequests).
func (b *base) Requests() []Request { return b.rec.list() }

// RequestCount is how many requests arrived since start or Reset.
func (b *base) RequestCount() int64 { return b.rec.count() }

// Reset clears what the simulator recorded (requests, counters, messages,
// and the buckets it owns: refilled, their recordings cleared); faults and
// limits are kept. The gateway's Reset leaves the shared C2S bucket alone.
func (b *base) Reset() {
	b.rec.reset()
	for _, f := range b.resets {
		f()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeRaw(w, status, mustJSON(v))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// paidCounter counts paid (charged) Work API answers per CPF, and those
// of them whose reply was lost.
type paidCounter struct {
	mu     sync.Mutex
	byCPF  map[string]int
	lostBy map[string]int
	total  atomic.Int64
	lost   atomic.Int64
}

func (p *paidCounter) add(cpf string) {
	p.mu.Lock()
	if p.byCPF == nil {
		p.byCPF = map[string]int{}
	}
	p.byCPF[cpf]++
	p.mu.Unlock()
	p.total.Add(1)
}

func (p *paidCounter) addLost(cpf string) {
	p.mu.Lock()
	if p.lostBy == nil {
		p.lostBy = map[string]int{}
	}
	p.lostBy[cpf]++
	p.mu.Unlock()
	p.lost.Add(1)
}

func (p *paidCounter) get(cpf string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byCPF[cpf]
}

func (p *paidCounter) getLost(cpf string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lostBy[cpf]
}

func (p *paidCounter) all() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneCounts(p.byCPF)
}

func (p *paidCounter) allLost() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneCounts(p.lostBy)
}

func cloneCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	maps.Copy(out, m)
	return out
}

func (p *paidCounter) reset() {
	p.mu.Lock()
	p.byCPF, p.lostBy = nil, nil
	p.total.Store(0)
	p.lost.Store(0)
	p.mu.Unlock()
}
