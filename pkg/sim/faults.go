package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults is what one simulator does wrong. The zero value is a healthy
// upstream. Over HTTP (/_sim/faults) durations are strings such as "150ms"
// or numbers of milliseconds.
type Faults struct {
	// LatencyMin alone is a fixed delay; with a larger LatencyMax the delay is
	// uniform in [LatencyMin, LatencyMax]. Applied before anything else
	// except Down, and cut short when the client gives up.
	LatencyMin time.Duration `json:"-"`
	LatencyMax time.Duration `json:"-"`
	// ErrorRate is the share of requests answered ErrorStatus (default 500).
	ErrorRate   float64 `json:"error_rate"`
	ErrorStatus int     `json:"error_status"`
	// HangRate is the share of requests held without an answer until the
	// client gives up (its context ends) or the simulator closes.
	HangRate float64 `json:"hang_rate"`
	// Burst429 is how many of the next requests get 429 with
	// Retry-After: RetryAfter (default "1"; text such as "1 minute" allowed).
	// It counts down; reading the faults shows what is left.
	Burst429   int    `json:"burst_429"`
	RetryAfter string `json:"retry_after"`
	// MalformedRate is the share of answers whose body is cut in half
	// (truncated JSON) with the status unchanged.
	MalformedRate float64 `json:"malformed_rate"`
	// Down fails every request at the connection: the connection is
	// hijacked and closed. DownStatus, when set (e.g. 503), answers that
	// status instead.
	Down       bool `json:"down"`
	DownStatus int  `json:"down_status"`
	// Work API only: every call answers HTTP 200 with error_token.json or
	// error_credits.json, and is not paid. Either can be switched on and off
	// at any time (SetFaults/UpdateFaults, PATCH /_sim/faults) to make a
	// window of outage.
	TokenExpired bool `json:"token_expired"`
	OutOfCredits bool `json:"out_of_credits"`

	// Lost replies: the share of requests that are fully handled (a message
	// IS posted, a Work API person IS served and paid) and whose reply is
	// then lost. LostReply502Rate answers 502 instead (the gateway a FastAPI
	// {"detail":...}, the others a plain-text proxy page);
	// LostReplyHangRate holds the answer until the client gives up or the
	// simulator closes; LostReplyDropRate closes the connection without an
	// answer. Counted by LostReplies; the request log marks them lost_502,
	// lost_hang, lost_drop with the handler's status in Handled. Drawn after
	// the faults above, so a request gets at most one fault.
	LostReply502Rate  float64 `json:"lost_reply_502_rate"`
	LostReplyHangRate float64 `json:"lost_reply_hang_rate"`
	LostReplyDropRate float64 `json:"lost_reply_drop_rate"`

	// LeadMessagesHidden (C2S and gateway) leaves the messages list out of
	// the lead document (GET and PATCH answers), as the confirmed C2S
	// document does, so a client cannot check what it already posted. Off,
	// a lead with messages lists them in data.attributes.messages. Set on
	// C2S it shows through the gateway too.
	LeadMessagesHidden bool `json:"lead_messages_hidden"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	type alias Faults
	return json.Marshal(struct {
		alias
		LatencyMin string `json:"latency_min"`
		LatencyMax string `json:"latency_max"`
	}{alias(f), f.LatencyMin.String(), f.LatencyMax.String()})
}

// UnmarshalJSON merges into f: keys that are absent keep their value.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type alias Faults
	aux := struct {
		*alias
		LatencyMin json.RawMessage `json:"latency_min"`
		LatencyMax json.RawMessage `json:"latency_max"`
	}{alias: (*alias)(f)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	for _, d := range []struct {
		raw json.RawMessage
		dst *time.Duration
	}{{aux.LatencyMin, &f.LatencyMin}, {aux.LatencyMax, &f.LatencyMax}} {
		if d.raw == nil {
			continue
		}
		v, err := parseDuration(d.raw)
		if err != nil {
			return err
		}
		*d.dst = v
	}
	return nil
}

func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return time.ParseDuration(s)
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil {
		return 0, fmt.Errorf("duration: want \"150ms\" or milliseconds, got %s", raw)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// FaultSet holds start-up faults per upstream; JSON keys are the upstream names.
type FaultSet struct {
	C2S      Faults `json:"c2s"`
	Gateway  Faults `json:"gateway"`
	Diretrix Faults `json:"diretrix"`
	WorkAPI  Faults `json:"workapi"`
}

type faultKind uint8

const (
	faultNone faultKind = iota
	faultDown
	fault429
	faultHang
	faultError
	faultMalformed
	faultLost502
	faultLostHang
	faultLostDrop
)

var faultNames = [...]string{"", "down", "429", "hang", "error", "malformed", "lost_502", "lost_hang", "lost_drop"}

type decision struct {
	kind       faultKind
	latency    time.Duration
	status     int
	retryAfter string
}

// injector decides, per request, which fault applies. One seeded source
// under a mutex keeps a run reproducible for a given request order; the
// atomic flag keeps the healthy path free of the mutex.
type injector struct {
	mu  sync.Mutex
	f   Faults
	rng *rand.Rand
	// lostRng draws the lost-reply modes, so setting them leaves the
	// sequence of the other faults as it was.
	lostRng *rand.Rand
	active  atomic.Bool
	// Modes read by the handlers without the mutex.
	tokenExpired, outOfCredits, hideMessages atomic.Bool
	stop                                     <-chan struct{}
}

func newInjector(seed uint64, f Faults, stop <-chan struct{}) *injector {
	in := &injector{rng: rand.New(rand.NewPCG(seed, 0xfa017)), lostRng: rand.New(rand.NewPCG(seed, 0x1057)), stop: stop}
	in.set(f)
	return in
}

func (in *injector) set(f Faults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.setLocked(f)
}

func (in *injector) setLocked(f Faults) {
	in.f = f
	in.active.Store(f != Faults{})
	in.tokenExpired.Store(f.TokenExpired)
	in.outOfCredits.Store(f.OutOfCredits)
	in.hideMessages.Store(f.LeadMessagesHidden)
}

func (in *injector) get() Faults {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.f
}

func (in *injector) update(fn func(*Faults)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f := in.f
	fn(&f)
	in.setLocked(f)
}

func (in *injector) decide() (d decision) {
	if !in.active.Load() {
		return d
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f := &in.f
	d.latency = f.LatencyMin
	if f.LatencyMax > f.LatencyMin {
		d.latency += time.Duration(in.rng.Int64N(int64(f.LatencyMax-f.LatencyMin) + 1))
	}
	// Draw only for configured rates so a setting's sequence does not depend
	// on the others.
	hit := func(rate float64) bool { return rate > 0 && in.rng.Float64() < rate }
	lost := func(rate float64) bool { return rate > 0 && in.lostRng.Float64() < rate }
	switch {
	case f.Down:
		d.kind, d.status = faultDown, f.DownStatus
	case f.Burst429 > 0:
		f.Burst429--
		in.active.Store(*f != Faults{})
		d.kind, d.status, d.retryAfter = fault429, http.StatusTooManyRequests, f.RetryAfter
		if d.retryAfter == "" {
			d.retryAfter = "1"
		}
	case hit(f.HangRate):
		d.kind = faultHang
	case hit(f.ErrorRate):
		d.kind, d.status = faultError, f.ErrorStatus
		if d.status == 0 {
			d.status = http.StatusInternalServerError
		}
	case hit(f.MalformedRate):
		d.kind = faultMalformed
	case lost(f.LostReply502Rate):
		d.kind = faultLost502
	case lost(f.LostReplyHangRate):
		d.kind = faultLostHang
	case lost(f.LostReplyDropRate):
		d.kind = faultLostDrop
	}
	return d
}

// wait blocks for d, or until the client gives up or the simulator closes.
// It reports whether the full delay elapsed. A zero d waits forever (hang).
func (in *injector) wait(ctx context.Context, d time.Duration) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-ctx.Done():
	case <-in.stop:
	}
	return false
}

// statusWriter remembers the status for the request log and carries a
// fault label a handler may set (Work API token/credit modes).
type statusWriter struct {
	http.ResponseWriter
	status  int
	fault   string
	handled int // lost replies: what the handler answered
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// markFault labels the request in the log; w may be wrapped.
func markFault(w http.ResponseWriter, label string) {
	switch x := w.(type) {
	case *statusWriter:
		x.fault = label
	case *bufWriter:
		if sw, ok := x.under.(*statusWriter); ok {
			sw.fault = label
		}
	}
}

// bufWriter collects a whole response: for truncating it (malformed fault)
// and for the gateway's in-process call to C2S. It cannot be hijacked, so a
// Down fault behind it turns into a 503.
type bufWriter struct {
	h      http.Header
	status int
	body   []byte
	under  http.ResponseWriter // set when truncating for a real client
}

func newBufWriter() *bufWriter { return &bufWriter{h: http.Header{}} }

func (b *bufWriter) Header() http.Header {
	if b.under != nil {
		return b.under.Header()
	}
	return b.h
}

func (b *bufWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.body = append(b.body, p...)
	return len(p), nil
}

// callNote carries facts between a caller and a handler it runs in
// process: the gateway and its C2S call, handle and a handler whose reply it
// is going to lose.
type callNote struct {
	rateLimited  bool   // C2S: the bucket refused the gateway's call
	hideMessages bool   // gateway: leave messages out of the lead document
	charged      string // Work API: the CPF the handler charged
}

type noteKey struct{}

func noteFrom(ctx context.Context) *callNote {
	n, _ := ctx.Value(noteKey{}).(*callNote)
	return n
}

func withNote(ctx context.Context, n *callNote) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

// handle runs one request through faults, the rate limit, the handler and
// the log, in this order: Down, the limit (not for an injected 429),
// latency, then the drawn fault or the handler.
func (b *base) handle(w http.ResponseWriter, r *http.Request, h http.Handler) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		b.admin.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	d := b.inj.decide()
	if d.kind != faultNone {
		sw.fault = faultNames[d.kind]
	}
	defer func() { b.rec.add(r, start, sw.status, sw.fault, sw.handled) }()

	if d.kind == faultDown {
		if d.status == 0 {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close() // the client sees the connection drop
					return
				}
			}
			d.status = http.StatusServiceUnavailable
		}
		b.errBody(sw, d.status, "service unavailable")
		return
	}
	if d.kind != fault429 && b.enforce {
		if cred := b.cred(r); cred != "" {
			if ok, wait := b.lim.take(cred); !ok {
				sw.fault = "rate_limit"
				if n := noteFrom(r.Context()); n != nil && via(r.Context()) == "gateway" {
					n.rateLimited = true // the gateway counts what it passes on
				} else {
					b.rec.rateLimited.Add(1)
				}
				sw.Header().Set("Retry-After", strconv.Itoa(wait))
				b.errBody(sw, http.StatusTooManyRequests, "too many requests")
				return
			}
		}
	}
	if d.latency > 0 && !b.inj.wait(r.Context(), d.latency) {
		if sw.fault == "" {
			sw.fault = "timeout"
		}
		abortIfWaiting(w, r)
		return
	}
	switch d.kind {
	case fault429:
		sw.Header().Set("Retry-After", d.retryAfter)
		b.errBody(sw, d.status, "too many requests")
	case faultHang:
		b.inj.wait(r.Context(), 0)
		abortIfWaiting(w, r)
	case faultError:
		b.errBody(sw, d.status, "internal server error")
	case faultMalformed:
		bw := &bufWriter{under: sw}
		h.ServeHTTP(bw, r)
		sw.Header().Del("Content-Length")
		sw.WriteHeader(max(bw.status, http.StatusOK))
		sw.Write(bw.body[:len(bw.body)/2])
	case faultLost502, faultLostHang, faultLostDrop:
		b.loseReply(w, sw, r, h, d.kind)
	default:
		h.ServeHTTP(sw, r)
	}
}

// loseReply serves the request in full, out of sight, then loses the reply.
func (b *base) loseReply(w http.ResponseWriter, sw *statusWriter, r *http.Request, h http.Handler, kind faultKind) {
	note := &callNote{}
	bw := newBufWriter()
	h.ServeHTTP(bw, r.WithContext(withNote(r.Context(), note)))
	sw.handled = max(bw.status, http.StatusOK)
	b.rec.lost.Add(1)
	if note.charged != "" && b.lostCharge != nil {
		b.lostCharge(note.charged)
	}
	switch kind {
	case faultLost502:
		if b.name == "gateway" {
			b.errBody(sw, http.StatusBadGateway, "Bad Gateway")
			return
		}
		body := "502 Bad Gateway\n"
		sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		sw.Header().Set("Content-Length", strconv.Itoa(len(body)))
		sw.WriteHeader(http.StatusBadGateway)
		io.WriteString(sw, body)
	case faultLostHang:
		b.inj.wait(r.Context(), 0)
		abortIfWaiting(w, r)
	case faultLostDrop:
		abort(w)
	}
}

// abortIfWaiting aborts a request whose wait the simulator cut short
// (Close) while its client still waits; a client that left needs nothing.
func abortIfWaiting(w http.ResponseWriter, r *http.Request) {
	if r.Context().Err() == nil {
		abort(w)
	}
}

// abort ends a request without an answer: the connection is closed, so a
// client still waiting (a hang released by Close) does not get an empty 200
// from net/http.
func abort(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	if _, inProcess := w.(*bufWriter); inProcess {
		return // the gateway's C2S call: no answer at all
	}
	panic(http.ErrAbortHandler) // e.g. HTTP/2: the server resets the stream
}
