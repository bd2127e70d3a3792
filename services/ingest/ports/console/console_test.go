package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// These tests drive the handlers over HTTP with fakes behind the
// interfaces; the browser tests (browser_test.go) run the real page on the
// real stack.

type scopedKeys map[string]bool // key -> admin

func (k scopedKeys) Scope(key string) (bool, bool) {
	admin, ok := k[key]
	return ok, admin
}

type fakeOps struct {
	mu       sync.Mutex
	letters  []ops.DeadLetter
	requeued []uint64
	replays  []ops.ReplayRequest
}

func (f *fakeOps) Status(context.Context) (*ops.Status, error) {
	return &ops.Status{Consumers: []ops.ConsumerStatus{{Name: "enricher__leads_resolved", Pending: 3, OldestAge: time.Minute}}}, nil
}

func (f *fakeOps) DLQList(_ context.Context, stage string) ([]ops.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ops.DeadLetter
	for _, d := range f.letters {
		if ops.StageMatches(d.Stage, stage) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeOps) DLQShow(_ context.Context, seq uint64, reveal bool) (json.RawMessage, error) {
	if reveal {
		panic("the console must never reveal")
	}
	return json.RawMessage(`{"seq": 7, "stage": "enricher__leads_resolved", "reason": "token refused"}`), nil
}

func (f *fakeOps) DLQRequeue(_ context.Context, seq uint64) (*ops.Requeued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.letters {
		if d.Seq == seq {
			f.letters = append(f.letters[:i], f.letters[i+1:]...)
			f.requeued = append(f.requeued, seq)
			return &ops.Requeued{Seq: seq, LeadID: d.LeadID, Subject: d.OriginalSubject}, nil
		}
	}
	return nil, failure.NotFound("fake")
}

func (f *fakeOps) DLQRequeueAll(ctx context.Context, stage string) (*ops.RequeueSummary, error) {
	list, _ := f.DLQList(ctx, stage)
	sum := &ops.RequeueSummary{}
	for _, d := range list {
		r, _ := f.DLQRequeue(ctx, d.Seq)
		sum.Requeued = append(sum.Requeued, *r)
	}
	return sum, nil
}

func (f *fakeOps) Replay(_ context.Context, req ops.ReplayRequest, hooks ops.ReplayHooks) (*ops.ReplaySummary, error) {
	f.mu.Lock()
	f.replays = append(f.replays, req)
	f.mu.Unlock()
	sum := &ops.ReplaySummary{Subject: "leads.received", DryRun: req.DryRun, Selected: 2, ToPublish: 2, Leads: []string{"lead1", "lead2"}}
	if hooks.OnSelected != nil {
		hooks.OnSelected(2)
	}
	if !req.DryRun {
		sum.ToPublish, sum.Leads, sum.Published, sum.ReplayID = 0, nil, 2, req.ReplayID
	}
	return sum, nil
}

type fakeRuns struct{}

func (fakeRuns) Trace(_ context.Context, id string) (*runs.Trace, error) {
	if id != "lead1" {
		return nil, failure.NotFound("fake")
	}
	now := time.Now()
	return &runs.Trace{LeadID: id, Status: "notified", Runs: []runs.Run{{RunID: "run1", Source: "c2s_webhook", Status: "notified", StartedAt: now, FinishedAt: &now}},
		Steps: []runs.Step{{RunID: "run1", Stage: "resolved", Outcome: "same_person", At: now,
			// A writer that forgot to mask: the console masks again.
			Detail: json.RawMessage(`{"persons":[{"cpf":"52998224725","role":"both"}],"note":"call 11987654321"}`)}}}, nil
}

func (fakeRuns) CountStages(_ context.Context, since ...time.Time) ([]runs.StageCounts, error) {
	return make([]runs.StageCounts, len(since)), nil
}

func (fakeRuns) RecentRuns(context.Context, runs.RunFilter) ([]runs.LeadRun, error) { return nil, nil }

type fakeUncertain struct {
	mu        sync.Mutex
	confirmed []string
}

func (f *fakeUncertain) ListUncertain(context.Context) ([]UncertainDelivery, error) {
	return []UncertainDelivery{{LeadID: "lead1", RunID: "run1", Status: "uncertain", Attempts: 1, CreatedAt: time.Now()}}, nil
}

func (f *fakeUncertain) ConfirmDelivery(_ context.Context, lead, run string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.confirmed = append(f.confirmed, lead+"/"+run)
	return "confirmed", nil
}

func (f *fakeUncertain) RepostDelivery(context.Context, string, string) (string, error) {
	return "queued", nil
}

type harness struct {
	srv  *httptest.Server
	ops  *fakeOps
	unc  *fakeUncertain
	cons *Console
}

func newHarness(t *testing.T, withUncertain bool) *harness {
	t.Helper()
	h := &harness{ops: &fakeOps{letters: []ops.DeadLetter{
		{Seq: 7, Stage: "enricher__leads_resolved", Reason: "token refused for 52998224725", LeadID: "lead1", OriginalSubject: "leads.resolved", FailedAt: time.Now()},
	}}}
	cfg := Config{Keys: scopedKeys{"admin-key": true, "read-key": false}, Ops: h.ops, Runs: fakeRuns{}, Log: zerolog.Nop(), Refresh: 100 * time.Millisecond}
	if withUncertain {
		h.unc = &fakeUncertain{}
		cfg.Uncertain = h.unc
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cons = New(ctx, cfg)
	r := chi.NewRouter()
	r.Mount(Base, h.cons)
	h.srv = httptest.NewServer(r)
	t.Cleanup(func() { cancel(); h.srv.Close() })
	return h
}

type client struct {
	t    *testing.T
	h    *harness
	http *http.Client
	csrf string
}

func (h *harness) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, h: h, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfInPage = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.http.Get(c.h.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfInPage.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) post(path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) signIn(key string) int {
	c.t.Helper()
	c.get(Base + "/login")
	code, _, _ := c.post(Base+"/login", url.Values{"key": {key}, "csrf": {c.csrf}, "next": {Base + "/dlq"}}, nil)
	if code == http.StatusSeeOther {
		c.get(Base + "/") // pick up the session's CSRF token
	}
	return code
}

func TestSignInSessionCookieAndSignOut(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t)
	if code, _, hdr := c.get(Base + "/dlq"); code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), Base+"/login?next=") {
		t.Fatalf("unsigned GET: %d %v", code, hdr)
	}
	c.get(Base + "/login")
	// A wrong key: 401 and words, no session.
	code, body, _ := c.post(Base+"/login", url.Values{"key": {"nope"}, "csrf": {c.csrf}}, nil)
	if code != http.StatusUnauthorized || !strings.Contains(body, "That API key is not valid") {
		t.Fatalf("wrong key: %d", code)
	}
	// The sign-in form's own CSRF token is required.
	code, _, _ = c.post(Base+"/login", url.Values{"key": {"admin-key"}, "csrf": {"forged"}}, nil)
	if code != http.StatusForbidden {
		t.Fatalf("forged sign-in: %d", code)
	}
	c.get(Base + "/login")
	code, _, hdr := c.post(Base+"/login", url.Values{"key": {"admin-key"}, "csrf": {c.csrf}, "next": {"//evil.example/x"}},
		map[string]string{"X-Forwarded-Proto": "https"})
	if code != http.StatusSeeOther || hdr.Get("Location") != Base+"/" {
		t.Fatalf("sign-in: %d, Location %q (an outside next must not be followed)", code, hdr.Get("Location"))
	}
	ck := ""
	for _, v := range hdr.Values("Set-Cookie") {
		if strings.HasPrefix(v, sessionCookie+"=") {
			ck = v
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Secure", "Path=/ui", "Expires="} {
		if !strings.Contains(ck, want) {
			t.Fatalf("session cookie %q lacks %s", ck, want)
		}
	}
	// Over plain HTTP the cookie is not Secure (else the browser drops it).
	c2 := h.client(t)
	c2.get(Base + "/login")
	_, _, hdr = c2.post(Base+"/login", url.Values{"key": {"admin-key"}, "csrf": {c2.csrf}}, nil)
	if strings.Contains(strings.Join(hdr.Values("Set-Cookie"), ";"), "Secure") {
		t.Fatalf("cookie Secure over plain HTTP: %v", hdr.Values("Set-Cookie"))
	}
	// The jar keeps Secure cookies for https only: sign c in over "http".
	c = h.client(t)
	if code := c.signIn("admin-key"); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	if code, body, _ := c.get(Base + "/dlq"); code != http.StatusOK || !strings.Contains(body, "Requeue dead letter 7") {
		t.Fatalf("dlq page: %d", code)
	}
	if code, _, _ := c.post(Base+"/logout", url.Values{"csrf": {c.csrf}}, nil); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	if code, _, _ := c.get(Base + "/dlq"); code != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", code)
	}
}

func TestCSRFAndReadOnlyKeys(t *testing.T) {
	h := newHarness(t, true)
	admin := h.client(t)
	admin.signIn("admin-key")
	// No token, a wrong token: refused, nothing requeued.
	for _, form := range []url.Values{{}, {"csrf": {"wrong"}}} {
		if code, body, _ := admin.post(Base+"/dlq/7/requeue", form, nil); code != http.StatusForbidden || !strings.Contains(body, "Reload the page") {
			t.Fatalf("requeue without a valid token: %d", code)
		}
	}
	if len(h.ops.requeued) != 0 {
		t.Fatal("requeued without a CSRF token")
	}

	ro := h.client(t)
	ro.signIn("read-key")
	_, body, _ := ro.get(Base + "/dlq")
	if strings.Contains(body, "Requeue") || !strings.Contains(body, "read-only") {
		t.Fatal("a read-only key sees requeue buttons")
	}
	if _, body, _ := ro.get(Base + "/uncertain"); strings.Contains(body, "post once more") {
		t.Fatal("a read-only key sees repost buttons")
	}
	for _, path := range []string{"/dlq/7/requeue", "/dlq/requeue", "/replay/run", "/replay/jobs/x/cancel", "/uncertain/confirm", "/uncertain/repost"} {
		code, body, _ := ro.post(Base+path, url.Values{"csrf": {ro.csrf}, "stage": {"enricher"}, "lead_id": {"lead1"}, "run_id": {"run1"}}, nil)
		if code != http.StatusForbidden || !strings.Contains(body, "needs an admin API key") {
			t.Fatalf("read-only POST %s: %d", path, code)
		}
	}
	if len(h.ops.requeued) != 0 || len(h.unc.confirmed) != 0 {
		t.Fatal("a read-only key acted")
	}
	// The admin acts, in place for htmx.
	code, body, _ := admin.post(Base+"/dlq/7/requeue", url.Values{"csrf": {admin.csrf}}, map[string]string{"HX-Request": "true"})
	if code != http.StatusOK || !strings.Contains(body, "Dead letter 7 (lead lead1) was requeued") || !strings.Contains(body, `id="dlq-empty"`) {
		t.Fatalf("admin requeue: %d %s", code, body)
	}
	code, _, _ = admin.post(Base+"/uncertain/confirm", url.Values{"csrf": {admin.csrf}, "lead_id": {"lead1"}, "run_id": {"run1"}}, nil)
	if code != http.StatusSeeOther || len(h.unc.confirmed) != 1 {
		t.Fatalf("confirm: %d %v", code, h.unc.confirmed)
	}
}

func TestUncertainHiddenWhenNotWired(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t)
	c.signIn("admin-key")
	if _, body, _ := c.get(Base + "/"); strings.Contains(body, "Uncertain deliveries") {
		t.Fatal("the nav shows uncertain deliveries without the interface")
	}
	if code, _, _ := c.get(Base + "/uncertain"); code != http.StatusNotFound {
		t.Fatalf("GET /uncertain: %d", code)
	}
	if code, _, _ := c.post(Base+"/uncertain/confirm", url.Values{"csrf": {c.csrf}, "lead_id": {"lead1"}, "run_id": {"run1"}}, nil); code != http.StatusNotFound {
		t.Fatalf("POST /uncertain/confirm: %d", code)
	}
}

func TestReplayRunsOnlyWhatWasPreviewed(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t)
	c.signIn("admin-key")
	// Without a selector, or with a CPF where lead ids go: words, no replay.
	for _, form := range []url.Values{{"since": {""}}, {"leads": {"52998224725"}}} {
		form.Set("csrf", c.csrf)
		code, body, _ := c.post(Base+"/replay/preview", form, nil)
		if code != http.StatusBadRequest || strings.Contains(body, "52998224725") {
			t.Fatalf("bad preview: %d", code)
		}
	}
	if code, _, _ := c.post(Base+"/replay/run", url.Values{"csrf": {c.csrf}, "preview": {"made-up"}}, nil); code != http.StatusConflict {
		t.Fatalf("run without a preview: %d", code)
	}
	code, body, _ := c.post(Base+"/replay/preview", url.Values{"csrf": {c.csrf}, "since": {"2h"}, "notify": {"on"}, "rate": {"5"}}, map[string]string{"HX-Request": "true"})
	if code != http.StatusOK || !strings.Contains(body, "2</span> leads would be replayed") || !strings.Contains(body, "sellers see a new message") {
		t.Fatalf("preview: %d %s", code, body)
	}
	id := regexp.MustCompile(`name="preview" value="([^"]+)"`).FindStringSubmatch(body)[1]
	// Notify needs the box ticked.
	if code, _, _ := c.post(Base+"/replay/run", url.Values{"csrf": {c.csrf}, "preview": {id}}, nil); code != http.StatusBadRequest {
		t.Fatalf("run without confirming: %d", code)
	}
	code, _, hdr := c.post(Base+"/replay/run", url.Values{"csrf": {c.csrf}, "preview": {id}, "confirm": {"yes"}}, nil)
	if code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), Base+"/replay/jobs/rp-") {
		t.Fatalf("run: %d %v", code, hdr)
	}
	// The preview is spent.
	if code, _, _ := c.post(Base+"/replay/run", url.Values{"csrf": {c.csrf}, "preview": {id}, "confirm": {"yes"}}, nil); code != http.StatusConflict {
		t.Fatalf("second run of one preview: %d", code)
	}
	h.ops.mu.Lock()
	ran := h.ops.replays[len(h.ops.replays)-1]
	h.ops.mu.Unlock()
	if ran.DryRun || ran.Since != "2h" || !ran.Notify || ran.Rate != 5 || ran.ReplayID == "" {
		t.Fatalf("ran %+v", ran)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, page, _ := c.get(hdr.Get("Location"))
		if strings.Contains(page, `id="replay-published">2<`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job page never showed the summary:\n%s", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPagesMaskPersonalData(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t)
	c.signIn("admin-key")
	for _, path := range []string{"/leads/lead1", "/dlq", "/dlq/7", "/leads?q=52998224725"} {
		_, body, _ := c.get(Base + path)
		for _, raw := range []string{"52998224725", "11987654321"} {
			if strings.Contains(body, raw) {
				t.Fatalf("%s shows %s", path, raw)
			}
		}
	}
	if _, body, _ := c.get(Base + "/leads/lead1"); !strings.Contains(body, "*********25") {
		t.Fatal("the lead page lost the masked CPF")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "/ui/",
		"/ui/leads?q=1":           "/ui/leads?q=1",
		"/ui":                     "/ui",
		"//evil.example":          "/ui/",
		"/uix":                    "/ui/",
		"https://evil.example/ui": "/ui/",
		"/ui/login":               "/ui/",
		"/ui/\\evil":              "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionsExpire(t *testing.T) {
	now := time.Now()
	st := newSessions(time.Hour, func() time.Time { return now })
	s := st.create("k", true)
	if st.byID(s.id) == nil {
		t.Fatal("fresh session missing")
	}
	now = now.Add(61 * time.Minute)
	if st.byID(s.id) != nil {
		t.Fatal("expired session still valid")
	}
}

func TestOverviewStreamPushesUntilSignOut(t *testing.T) {
	h := newHarness(t, false)
	c := h.client(t)
	c.signIn("admin-key")
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+Base+"/overview/stream", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 100)
	go func() {
		defer close(events)
		buf := make([]byte, 64<<10)
		var pending string
		for {
			n, err := resp.Body.Read(buf)
			pending += string(buf[:n])
			for {
				i := strings.Index(pending, "\n\n")
				if i < 0 {
					break
				}
				events <- pending[:i]
				pending = pending[i+2:]
			}
			if err != nil {
				return
			}
		}
	}()
	next := func() string {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream closed")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return ""
	}
	if ev := next(); !strings.HasPrefix(ev, "retry:") {
		t.Fatalf("first: %q", ev)
	}
	for i := 0; i < 2; i++ { // pushed again and again
		if ev := next(); !strings.HasPrefix(ev, "event: overview\n") || !strings.Contains(ev, `id="count-received-1h"`) {
			t.Fatalf("event %d: %.200q", i, ev)
		}
	}
	c.post(Base+"/logout", url.Values{"csrf": {c.csrf}}, nil)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream closed without saying why")
			}
			if ev == "event: end\ndata: signed-out" {
				return
			}
		case <-deadline:
			t.Fatal("the stream outlived the sign-out")
		}
	}
}

// Every page and fragment draws from a representative view, with its
// landmark, escaped values and links kept; a view with data of the wrong
// type fails to draw, and the handler answers 500 in words.
func TestPagesRender(t *testing.T) {
	now := time.Now()
	ov := &overview{At: now, Counts: []countRow{{ID: "received", Label: "Received"}}, Status: &ops.Status{},
		Consumers: []consumerRow{{ConsumerStatus: ops.ConsumerStatus{Name: "resolver"}}}}
	letters := &dlqData{Stages: []stageGroup{{Stage: "resolver", Count: 1}}, Letters: []deadLetter{
		{DeadLetter: ops.DeadLetter{Seq: 7, Stage: "resolver", Reason: "<b>bad</b>", LeadID: "lead-1", FailedAt: now}}}}
	job := jobView{ID: "rp-1", Status: "running", ToPublish: 2, Handled: 1}
	replay := &replayData{Form: newForm(), Preview: &replayPreview{ID: "p", Summary: &ops.ReplaySummary{ToPublish: 1}, Leads: []string{"lead-1"}, CanRun: true}}
	lead := &leadData{LeadID: "lead-1", Runs: []runView{{Run: runs.Run{RunID: "run1"}, Steps: []stepView{{Stage: "received"}}}}}
	unc := &uncertainData{Deliveries: []uncertainRow{{UncertainDelivery: UncertainDelivery{LeadID: "lead-1", RunID: "run1"}}}}
	for _, tc := range []struct {
		name string
		p    page
		data any
		want []string
	}{
		{"login", bind(loginHTML), loginData{Problem: "no"}, []string{`id="key"`, `aria-invalid="true"`}},
		{"problem", problemHTML, nil, []string{`id="main"`, `id="error"`}},
		{"notice", noticeHTML, nil, []string{`role="alert"`}},
		{"overview", bind(overviewHTML), ov, []string{`id="overview-body"`, `data-sse-src="/ui/overview/stream"`, `id="count-received-1h"`}},
		{"overview-body", bind(overviewBodyHTML), ov, []string{`id="count-received-1h"`, `id="consumers"`}},
		{"dlq", bind(dlqHTML), letters, []string{`id="dlq-panel"`, `id="dl-7"`, `aria-current="page"`}},
		{"dlq-panel", bind(dlqPanelHTML), letters, []string{`id="dlq-panel"`, `&lt;b&gt;bad&lt;/b&gt;`, `href="/ui/leads/lead-1"`, `hx-post="/ui/dlq/7/requeue"`}},
		{"dlq-detail", bind(dlqDetailHTML), dlqDetailData{Seq: 7, Document: "{}"}, []string{`id="dlq-document"`, `action="/ui/dlq/7/requeue"`}},
		{"leads", bind(leadsHTML), &leadsData{Windows: windows, Since: "7d", Empty: "none"}, []string{`id="runs-empty"`, `<option value="7d" selected>`}},
		{"lead", bind(leadHTML), lead, []string{`id="lead-id"`, `href="/ui/replay?lead=lead-1"`, `id="run-0"`}},
		{"replay", bind(replayHTML), replay, []string{`id="replay-form"`, `id="replay-result"`}},
		{"replay-result", bind(replayResultHTML), replay, []string{`id="replay-preview"`, `id="run-replay"`}},
		{"replay-job", bind(replayJobHTML), job, []string{`id="replay-progress"`, `data-sse-src="/ui/replay/jobs/rp-1/stream"`}},
		{"replay-progress", bind(replayProgressHTML), job, []string{`id="replay-status"`, `id="cancel-replay"`, `>50%</progress>`}},
		{"uncertain", bind(uncertainHTML), unc, []string{`id="uncertain-panel"`, `id="uncertain"`}},
		{"uncertain-panel", bind(uncertainPanelHTML), unc, []string{`id="uncertain-panel"`, `class="confirm"`}},
	} {
		v := &view{Title: "T", Nav: "dlq", SignedIn: true, Admin: true, CSRF: "c", Error: "e", Data: tc.data}
		html, err := (&Console{}).renderString(tc.p, v)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(html, want) {
				t.Errorf("%s lacks %s:\n%s", tc.name, want, html)
			}
		}
		if strings.Contains(html, "about:invalid") || strings.Contains(html, "<b>") {
			t.Errorf("%s: a link was refused or a value not escaped:\n%s", tc.name, html)
		}
	}

	c := &Console{cfg: Config{Log: zerolog.Nop()}}
	rec := httptest.NewRecorder()
	c.execute(rec, httptest.NewRequest(http.MethodGet, Base+"/dlq", nil), http.StatusOK, bind(dlqHTML), &view{Data: loginData{}})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "The page could not be drawn") {
		t.Fatalf("a page with the wrong data: %d %q", rec.Code, rec.Body.String())
	}
}

// Values in links are escaped as html/template escaped them (the expected
// strings are what it wrote for the same value).
func TestLinkEscaping(t *testing.T) {
	for _, in := range []string{`a b"<x>&?/é'+%zz%41[]#`, "lead-1_A.b~", "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"} {
		// A path segment comes back whole and cannot end the path or the
		// attribute early.
		p := pathPart(in)
		if back, err := url.PathUnescape(p); err != nil || back != in {
			t.Errorf("pathPart(%q) = %q: comes back as %q, %v", in, p, back, err)
		}
		if strings.ContainsAny(p, "/?#\" <>'") {
			t.Errorf("pathPart(%q) = %q keeps a character that ends a segment or an attribute", in, p)
		}
		// A query value comes back whole as the one value of its key.
		q := queryPart(in)
		if v, err := url.ParseQuery("lead=" + q); err != nil || len(v) != 1 || v.Get("lead") != in {
			t.Errorf("queryPart(%q) = %q: parses as %v, %v", in, q, v, err)
		}
	}
	if got := pathPart("lead-1_A.b~"); got != "lead-1_A.b~" {
		t.Errorf("pathPart changed a plain id: %s", got)
	}
}
