package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the limiters' clock in these tests: it moves only when told,
// or by step on every reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) SetStep(d time.Duration) {
	c.mu.Lock()
	c.step = d
	c.mu.Unlock()
}

type outcome struct {
	route  string
	status int
	retry  string
	body   string
}

// c2sCall posts a message through route "direct" or "gateway", or reads a
// lead through "direct-get" or "gateway-get".
func c2sCall(s *Sims, route, lead string) (outcome, error) {
	var req *http.Request
	switch route {
	case "direct":
		req, _ = http.NewRequest("POST", s.C2SBaseURL+"/integration/leads/"+lead+"/create_message", strings.NewReader(`{"body":"oi"}`))
	case "gateway":
		req, _ = http.NewRequest("POST", s.GatewayURL+"/leads/"+lead+"/messages", strings.NewReader(`{"message":"oi"}`))
	case "direct-get":
		req, _ = http.NewRequest("GET", s.C2SBaseURL+"/integration/leads/"+lead, nil)
	case "gateway-get":
		req, _ = http.NewRequest("GET", s.GatewayURL+"/leads/"+lead, nil)
	}
	req.Header.Set("Authorization", "Bearer "+s.Config.C2SToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return outcome{route, res.StatusCode, res.Header.Get("Retry-After"), string(b)}, err
}

// hammer runs workers×each calls over the four C2S routes concurrently.
func hammer(t *testing.T, s *Sims, workers, each int) []outcome {
	t.Helper()
	routes := []string{"direct", "gateway", "direct-get", "gateway-get"}
	leads := s.Pop.Leads()
	out := make(chan outcome, workers*each)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				o, err := c2sCall(s, routes[(w+i)%len(routes)], leads[w%len(leads)].ID)
				if err != nil {
					errc <- err
					return
				}
				out <- o
			}
		}()
	}
	wg.Wait()
	close(out)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	var list []outcome
	for o := range out {
		list = append(list, o)
	}
	return list
}

// With the clock stopped, the shared bucket admits exactly its burst across
// both routes and many concurrent clients, and refuses the rest with 429 and
// the wait until the next token.
func TestSharedC2SBucketBurst(t *testing.T) {
	clk := newFakeClock()
	s := start(t, Config{Seed: 30, People: 20, Now: clk.Now, Limits: LimitSet{C2S: PerMinute(10, 3)}})
	tok := s.Config.C2SToken
	list := hammer(t, s, 8, 6)
	admitted, posted := 0, 0
	for _, o := range list {
		switch o.status {
		case 200, 201:
			admitted++
			if o.status == 201 {
				posted++
			}
		case 429:
			// 10/min, burst 3, all spent at one instant: the next token is
			// 3×6s - 2×6s = 6s away.
			if o.retry != "6" {
				t.Errorf("%s: Retry-After %q, want 6", o.route, o.retry)
			}
			if strings.HasPrefix(o.route, "gateway") && !strings.Contains(o.body, `"detail"`) {
				t.Errorf("gateway 429 not FastAPI-shaped: %s", o.body)
			}
		default:
			t.Errorf("%s: status %d %s", o.route, o.status, o.body)
		}
	}
	if admitted != 3 {
		t.Errorf("admitted %d of %d, want the burst of 3", admitted, len(list))
	}
	if s.C2S.MessageCount() != posted {
		t.Errorf("%d messages for %d 201s: a refused post had an effect", s.C2S.MessageCount(), posted)
	}
	lim := s.C2S.Limiter()
	if s.Gateway.Limiter() != lim || lim.AdmittedCount(tok) != 3 || lim.Rejected(tok) != int64(len(list)-3) {
		t.Errorf("limiter: admitted %d rejected %d", lim.AdmittedCount(tok), lim.Rejected(tok))
	}
	if got := s.C2S.RateLimited() + s.Gateway.RateLimited(); got != int64(len(list)-3) {
		t.Errorf("RateLimited c2s %d + gateway %d, want %d", s.C2S.RateLimited(), s.Gateway.RateLimited(), len(list)-3)
	}
	if s.Gateway.RateLimited() == 0 || s.C2S.RateLimited() == 0 {
		t.Errorf("each route should have been refused: c2s %d gateway %d", s.C2S.RateLimited(), s.Gateway.RateLimited())
	}
	n := 0
	for _, r := range append(s.C2S.Requests(), s.Gateway.Requests()...) {
		if r.Fault == "rate_limit" && r.Via == "" {
			n++
		}
	}
	if n != len(list)-3 {
		t.Errorf("%d rate_limit entries in the logs, want %d", n, len(list)-3)
	}

	// Waiting Retry-After brings exactly one token back; a long wait only
	// refills the burst.
	o, _ := c2sCall(s, "gateway", s.Pop.Leads()[0].ID)
	wait, _ := strconv.Atoi(o.retry)
	clk.Advance(time.Duration(wait) * time.Second)
	for i, want := range []int{201, 429} {
		if o, _ := c2sCall(s, []string{"direct", "gateway"}[i], s.Pop.Leads()[0].ID); o.status != want {
			t.Errorf("after Retry-After, call %d: %d, want %d", i, o.status, want)
		}
	}
	clk.Advance(time.Hour)
	before := lim.AdmittedCount(tok)
	hammer(t, s, 4, 3)
	if got := lim.AdmittedCount(tok) - before; got != 3 {
		t.Errorf("after an hour admitted %d, want the burst of 3", got)
	}
}

// With time moving, concurrent clients on both routes never get more than
// Burst + Rate×window through in any window.
func TestSharedC2SBucketWindow(t *testing.T) {
	clk := newFakeClock()
	clk.SetStep(time.Second) // every limiter decision is one second later
	s := start(t, Config{Seed: 31, People: 20, Now: clk.Now, Limits: LimitSet{C2S: PerMinute(10, 3)}})
	tok := s.Config.C2SToken
	list := hammer(t, s, 8, 25) // 200 decisions over 200 s
	ok := 0
	for _, o := range list {
		if o.status < 300 {
			ok++
		} else if n, err := strconv.Atoi(o.retry); o.status != 429 || err != nil || n < 1 || n > 6 {
			t.Errorf("%s: %d Retry-After %q", o.route, o.status, o.retry)
		}
	}
	lim := s.C2S.Limiter()
	times := lim.Admitted(tok)
	if len(times) != ok || lim.AdmittedCount(tok) != int64(ok) {
		t.Fatalf("%d admission times, %d counted, %d answers got through", len(times), lim.AdmittedCount(tok), ok)
	}
	// 200 s at 10/min plus the burst: at most 3 + 33.
	if ok > 3+200/6 || ok < 200/6 {
		t.Errorf("admitted %d in 200 s", ok)
	}
	for _, w := range []time.Duration{time.Second, 6 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute} {
		bound := 3 + int(10*w/time.Minute)
		got := lim.MaxAdmittedIn(tok, w)
		// Check MaxAdmittedIn against a direct count.
		direct := 0
		for i := range times {
			n := 0
			for _, u := range times[i:] {
				if u.Sub(times[i]) < w {
					n++
				}
			}
			direct = max(direct, n)
		}
		if got != direct || got > bound {
			t.Errorf("window %v: MaxAdmittedIn %d, direct count %d, bound %d", w, got, direct, bound)
		}
	}
	if lim.MaxAdmittedIn(tok, 0) != lim.MaxAdmittedIn(tok, time.Minute) {
		t.Error("window 0 is not the limit's period")
	}
}

func TestWorkAPIAndDiretrixBuckets(t *testing.T) {
	clk := newFakeClock()
	s := start(t, Config{Seed: 32, People: 20, Now: clk.Now,
		Limits: LimitSet{WorkAPI: PerSecond(0.5, 2), Diretrix: Limit{Rate: 3, Per: time.Second, Burst: 1}}})
	u := s.workURL("cpf", HelenaCPF)
	for i, want := range []int{200, 200, 429, 429} {
		r := do(t, "GET", u, "")
		if r.status != want {
			t.Errorf("call %d: %d, want %d", i, r.status, want)
		}
		if want == 429 {
			if r.header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2 (one token per 2 s)", r.header.Get("Retry-After"))
			}
			if m, ok := decode(t, r.body).(map[string]any); !ok || m["status"] != float64(429) {
				t.Errorf("429 body %s", r.body)
			}
		}
	}
	// A refused token is not the account's: it is neither limited nor paid.
	if r := do(t, "GET", s.WorkAPIURL+"?token=nope&modulo=cpf&consulta="+HelenaCPF, ""); r.status != 200 {
		t.Errorf("bad token: %d", r.status)
	}
	if s.WorkAPI.PaidCalls(HelenaCPF) != 2 || s.WorkAPI.RateLimited() != 2 || s.WorkAPI.Limiter().Rejected(s.Config.WorkToken) != 2 {
		t.Errorf("paid %d, rate limited %d", s.WorkAPI.PaidCalls(HelenaCPF), s.WorkAPI.RateLimited())
	}
	clk.Advance(2 * time.Second)
	if r := do(t, "GET", u, ""); r.status != 200 || s.WorkAPI.PaidCalls(HelenaCPF) != 3 {
		t.Errorf("after Retry-After: %d", r.status)
	}

	for i, want := range []int{200, 429} {
		r := s.diretrixGet(t, "Telefone", HelenaPhone)
		if r.status != want || (want == 429 && r.header.Get("Retry-After") != "1") {
			t.Errorf("diretrix call %d: %d Retry-After %q", i, r.status, r.header.Get("Retry-After"))
		}
	}
	if s.Diretrix.RateLimited() != 1 || s.C2S.RateLimited() != 0 || s.Diretrix.Limiter().AdmittedCount(s.Config.DiretrixUser) != 1 {
		t.Errorf("diretrix rate limited %d", s.Diretrix.RateLimited())
	}
	// Reset refills the owner's bucket and clears its recordings.
	s.Reset()
	if r := s.diretrixGet(t, "Telefone", HelenaPhone); r.status != 200 || s.Diretrix.Limiter().AdmittedCount(s.Config.DiretrixUser) != 1 {
		t.Errorf("after Reset: %d", r.status)
	}
}

// Without a limit nothing is refused, and admissions are still recorded, so
// a test can check the product's own pacing.
func TestNoLimitRecordsAdmissions(t *testing.T) {
	clk := newFakeClock()
	clk.SetStep(time.Second)
	s := start(t, Config{Seed: 33, People: 20, Now: clk.Now})
	list := hammer(t, s, 4, 5)
	for _, o := range list {
		if o.status >= 300 {
			t.Fatalf("%s: %d", o.route, o.status)
		}
	}
	lim := s.Gateway.Limiter()
	if lim.AdmittedCount(s.Config.C2SToken) != 20 || lim.MaxAdmittedIn(s.Config.C2SToken, 5*time.Second) != 5 {
		t.Errorf("admitted %d, max in 5 s %d", lim.AdmittedCount(s.Config.C2SToken), lim.MaxAdmittedIn(s.Config.C2SToken, 5*time.Second))
	}
	// Requests without the token are not the token's.
	do(t, "GET", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, "")
	if st := lim.Stats(0); len(st) != 1 || st[s.Config.C2SToken].Admitted != 20 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestLimitsAdmin(t *testing.T) {
	s := start(t, Config{Seed: 34, People: 20})
	// The gateway's endpoint is the shared C2S bucket.
	r := do(t, "PUT", s.GatewayURL+"/_sim/limits", `{"rate":10,"per":"1m","burst":2}`)
	if r.status != 200 || s.C2S.Limit() != PerMinute(10, 2) {
		t.Fatalf("PUT: %d %s; C2S limit %+v", r.status, r.body, s.C2S.Limit())
	}
	jsonEqual(t, r.body, []byte(`{"rate":10,"per":"1m0s","burst":2}`))
	do(t, "PATCH", s.C2SBaseURL+"/_sim/limits", `{"burst":1}`)
	if s.Gateway.Limit() != PerMinute(10, 1) {
		t.Errorf("after PATCH %+v", s.Gateway.Limit())
	}
	c2sCall(s, "direct-get", ContractLeadID)
	c2sCall(s, "gateway-get", ContractLeadID)
	var got struct {
		Limit       Limit                  `json:"limit"`
		Window      string                 `json:"window"`
		Credentials map[string]LimitStats  `json:"credentials"`
		AdmittedAt  map[string][]time.Time `json:"admitted_at"`
	}
	json.Unmarshal(do(t, "GET", s.C2SBaseURL+"/_sim/limits?window=10s&times=1", "").body, &got)
	st := got.Credentials[s.Config.C2SToken]
	if got.Window != "10s" || st.Admitted != 1 || st.Rejected != 1 || st.MaxInWindow != 1 || len(got.AdmittedAt[s.Config.C2SToken]) != 1 {
		t.Errorf("GET /_sim/limits = %+v", got)
	}
	if r := do(t, "PUT", s.WorkAPIURL[:strings.LastIndex(s.WorkAPIURL, "/")]+"/_sim/limits", `{"rate":2,"per":500}`); r.status != 200 ||
		s.WorkAPI.Limit() != (Limit{Rate: 2, Per: 500 * time.Millisecond, Burst: 1}) {
		t.Errorf("PUT ms: %s", r.body)
	}
	if r := do(t, "PUT", s.C2SBaseURL+"/_sim/limits", `{"per":"soon"}`); r.status != 400 {
		t.Errorf("bad period: %d", r.status)
	}
	do(t, "DELETE", s.GatewayURL+"/_sim/limits", "")
	if s.C2S.Limit().Enabled() {
		t.Error("DELETE left a limit")
	}
	// Admin calls are not limited.
	if s.C2S.Limiter().AdmittedCount(s.Config.C2SToken) != 1 {
		t.Error("admin calls went through the bucket")
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"":                  {},
		"off":               {},
		"0":                 {},
		"10/1m,burst=10":    PerMinute(10, 10),
		"10/m":              PerMinute(10, 1),
		"0.5/s,burst=2":     PerSecond(0.5, 2),
		"5":                 PerSecond(5, 1),
		" 3 / 2s , burst=4": {Rate: 3, Per: 2 * time.Second, Burst: 4},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, _ := ParseLimit(got.String()); again != got {
			t.Errorf("%q: String %q reads back as %+v", in, got.String(), again)
		}
	}
	for _, bad := range []string{"x", "10/soon", "10/m,3", "10/m,burst=-1", "-1/s", "10/0s"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}
