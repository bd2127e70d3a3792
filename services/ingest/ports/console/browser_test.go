package console_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/ingest/ports/console"
)

// screenshotsEnv names a directory: when set, the browser test saves a PNG
// of every page it visits there, at 1280 px and at phone width
// (docs/console/ holds the committed ones:
// LEADFLOW_CONSOLE_SCREENSHOTS=$PWD/docs/console go test -run TestConsoleInBrowser ./services/ingest/ports/console/).
const screenshotsEnv = "LEADFLOW_CONSOLE_SCREENSHOTS"

// The pages saved as screenshots (at 1280 px; some also at phone width).
var (
	screenshots = map[string]bool{"login-wrong-key": true, "overview": true, "leads-search": true, "lead": true, "dlq": true,
		"dlq-detail": true, "dlq-requeued": true, "replay-preview": true, "replay-job": true, "dlq-read-only": true, "uncertain": true}
	phoneScreenshots = map[string]bool{"login": true, "overview": true, "lead": true, "dlq": true, "replay-preview": true}
)

// tab is one browser tab on one console, collecting the HTML of every page
// it shows for the personal-data check.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // server root; the console is at base + "/ui"
	seen *pages
}

type pages struct {
	mu   sync.Mutex
	html map[string]string // page name -> HTML
}

func (p *pages) add(name, html string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.html[name] = html
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\npage text:\n%s", err, b.pageText())
	}
}

// pageText is what the page says, for failure messages.
func (b *tab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

func run[T any](b *tab, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

func (b *tab) open(path string, waitFor string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return strings.Join(strings.Fields(run(b, chromedp.TextContent(chromedp.CSS(sel)))), " ")
}

// poll waits until a JavaScript expression is truthy.
func (b *tab) poll(what, expr string, within time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, b.pageText())
	}
}

// capture records the page's HTML, checks that every control has a label
// and that nothing overflows a phone's width, and saves screenshots when
// asked to.
func (b *tab) capture(name string) {
	b.t.Helper()
	// Read in the page's current document: a node id taken just before a
	// form's navigation finishes would name a node that no longer exists.
	b.seen.add(name, run(b, chromedp.Evaluate[string](`document.documentElement.outerHTML`)))
	unlabeled := run(b, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button'))
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
		.map(e => e.outerHTML.slice(0, 120))`))
	if len(unlabeled) > 0 {
		b.t.Errorf("%s: controls without a label: %v", name, unlabeled)
	}
	dir := os.Getenv(screenshotsEnv)
	if dir != "" && screenshots[name] {
		png := run(b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	overflow := run(b, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	if overflow > 0 {
		wide := run(b, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)`))
		b.t.Errorf("%s: %d px wider than a 390 px phone screen: %v", name, overflow, wide)
	}
	if dir != "" && phoneScreenshots[name] {
		png := run(b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+"-phone.png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

func (b *tab) signIn(key, landing string) {
	b.t.Helper()
	b.open("/ui/login", "#key")
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), key+kb.Enter), chromedp.WaitVisible(chromedp.CSS(landing)))
}

// fakeUncertain stands in for the uncertain deliveries of the other branch:
// one delivery on a real lead until it is confirmed.
type fakeUncertain struct {
	mu        sync.Mutex
	leadID    string
	confirmed bool
}

func (f *fakeUncertain) ListUncertain(context.Context) ([]console.UncertainDelivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.confirmed {
		return nil, nil
	}
	return []console.UncertainDelivery{{LeadID: f.leadID, RunID: "0f3c2a7d9e8b4c1a", Stage: "notifier__leads_enriched", Status: "uncertain",
		Route: "direct", Attempts: 1, Reason: "the post's reply was lost and the lead lists no messages", CreatedAt: time.Now().Add(-7 * time.Minute)}}, nil
}

func (f *fakeUncertain) ConfirmDelivery(_ context.Context, leadID, runID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.confirmed = true
	return "confirmed", nil
}

func (f *fakeUncertain) RepostDelivery(context.Context, string, string) (string, error) {
	return "queued", nil
}

type scopes map[string]bool

func (s scopes) Scope(key string) (bool, bool) { admin, ok := s[key]; return ok, admin }

// TestConsoleInBrowser drives the real pages in headless Chromium against
// the whole product in one process (real Postgres, embedded NATS, the
// simulators): ingest serves the console at /ui.
func TestConsoleInBrowser(t *testing.T) {
	chromium := findChromium(t)
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, o, pool := startStack(t, sim.Config{Seed: 5, People: 40, Leads: 40})
	leads := singlePersonLeads(t, s.Sims.Pop, 2)
	live, failing := leads[0], leads[1]
	seen := &pages{html: map[string]string{}}
	admin := &tab{t: t, ctx: newBrowser(t, chromium), base: s.IngestURL, seen: seen}

	// A malformed event the resolver dead-letters for good: it stays listed
	// for the read-only check below.
	if _, err := o.JS.Publish(context.Background(), events.SubjectReceived, []byte(`{"lead_id": "abc", "oops"`)); err != nil {
		t.Fatal(err)
	}
	var poisonSeq uint64
	waitFor(t, 20*time.Second, "the malformed event in the dead letters", func() (bool, string) {
		list, err := o.DLQList(context.Background(), "resolver")
		if err == nil && len(list) == 1 {
			poisonSeq = list[0].Seq
		}
		return poisonSeq > 0, fmt.Sprint(list, err)
	})

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) { admin.t = t; f(t) }) {
			t.FailNow()
		}
		admin.t = t
	}

	step("SignInWrongKeyThenRightKey", func(t *testing.T) {
		admin.do(chromedp.Navigate(s.IngestURL+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#key")))
		if loc := run(admin, chromedp.Location()); !strings.Contains(loc, "/ui/login?next=") {
			t.Fatalf("unsigned visit landed on %s", loc)
		}
		admin.capture("login")
		admin.do(chromedp.SendKeys(chromedp.CSS("#key"), "not-a-key"), chromedp.Click(chromedp.CSS("#sign-in")),
			chromedp.WaitVisible(chromedp.CSS("#error")))
		if msg := admin.text("#error"); !strings.Contains(msg, "That API key is not valid") {
			t.Fatalf("wrong key: %q", msg)
		}
		admin.capture("login-wrong-key")
		// The right key, with the keyboard only: type and press Enter.
		admin.do(chromedp.SendKeys(chromedp.CSS("#key"), adminKey+kb.Enter), chromedp.WaitVisible(chromedp.CSS("#overview-body")))
		if role := admin.text("#role"); role != "admin" {
			t.Fatalf("role badge %q", role)
		}
	})

	step("OverviewUpdatesLive", func(t *testing.T) {
		admin.open("/ui/", "#count-received-1h")
		before, _ := strconv.Atoi(admin.text("#count-received-1h"))
		run(admin, chromedp.Evaluate[int](`window.__sameDocument = 1`))
		postWebhook(t, s, live)
		admin.poll("the received count to grow without a reload",
			fmt.Sprintf(`window.__sameDocument === 1 && Number(document.querySelector('#count-received-1h').textContent) > %d`, before), 25*time.Second)
		waitRun(t, pool, live.ID, runs.StageNotified)
		admin.poll("the notified count to grow", `Number(document.querySelector('#count-notified-1h').textContent) > 0 && window.__sameDocument === 1`, 25*time.Second)
		admin.capture("overview")
	})

	step("SearchToTimeline", func(t *testing.T) {
		admin.open("/ui/leads", "#q")
		admin.capture("leads")
		admin.do(chromedp.SendKeys(chromedp.CSS("#q"), live.ID[:10]), chromedp.Click(chromedp.CSS("#find-lead")),
			chromedp.WaitVisible(chromedp.CSS("#runs")))
		admin.capture("leads-search")
		admin.do(chromedp.Click(chromedp.CSS(`#runs a[href="/ui/leads/`+live.ID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#lead-id")))
		if id := admin.text("#lead-id"); id != live.ID {
			t.Fatalf("lead page of %q", id)
		}
		if st := admin.text("#lead-status"); st != runs.StageNotified {
			t.Fatalf("lead status %q", st)
		}
		if msg := admin.text("#message-status"); !strings.Contains(msg, "sent") {
			t.Fatalf("message status %q", msg)
		}
		timeline := admin.text("ol.timeline")
		for _, stage := range []string{"received", "resolved", "enriched", "notified"} {
			if !strings.Contains(timeline, stage) {
				t.Fatalf("timeline lacks %s:\n%s", stage, timeline)
			}
		}
		cpf := s.Sims.Pop.ExpectedPersons(live.ID)[0]
		if got := admin.text("#persons tbody th"); got != strings.Repeat("*", 9)+cpf[9:] {
			t.Fatalf("persons show %q", got)
		}
		admin.capture("lead")
		// The whole id in the header's search goes straight to the lead.
		admin.open("/ui/", "#nav-q")
		admin.do(chromedp.SendKeys(chromedp.CSS("#nav-q"), live.ID+kb.Enter), chromedp.WaitVisible(chromedp.CSS("#lead-id")))
	})

	step("RequeueDeadLetter", func(t *testing.T) {
		s.Sims.WorkAPI.SetFaults(sim.Faults{TokenExpired: true})
		postWebhook(t, s, failing)
		var seq uint64
		waitFor(t, 30*time.Second, "the enricher's dead letter", func() (bool, string) {
			list, err := o.DLQList(context.Background(), "enricher")
			if err == nil && len(list) == 1 {
				seq = list[0].Seq
			}
			return seq > 0, fmt.Sprint(list, err)
		})
		s.Sims.WorkAPI.ClearFaults()
		row := fmt.Sprintf("#dl-%d", seq)
		admin.open("/ui/dlq", row)
		admin.capture("dlq")
		admin.open(fmt.Sprintf("/ui/dlq/%d", seq), "#dlq-document")
		if doc := admin.text("#dlq-document"); !strings.Contains(doc, failing.ID) || !strings.Contains(doc, `"cpf": "*********`) {
			t.Fatalf("dead letter document:\n%s", doc)
		}
		admin.capture("dlq-detail")
		admin.open("/ui/dlq", row)
		run(admin, chromedp.Evaluate[int](`window.__sameDocument = 2`))
		admin.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Requeue dead letter %d"]`, seq))),
			chromedp.WaitVisible(chromedp.CSS("#dlq-notice")), chromedp.WaitNotPresent(chromedp.CSS(row)))
		if msg := admin.text("#dlq-notice"); !strings.Contains(msg, "was requeued") || !strings.Contains(msg, failing.ID) {
			t.Fatalf("notice %q", msg)
		}
		if same := run(admin, chromedp.Evaluate[int](`window.__sameDocument || 0`)); same != 2 {
			t.Fatal("the requeue reloaded the page instead of updating it in place")
		}
		if focused := run(admin, chromedp.Evaluate[string](`document.activeElement && document.activeElement.id`)); focused != "dlq-notice" {
			t.Errorf("focus after the requeue is on %q, want the notice", focused)
		}
		admin.capture("dlq-requeued")
		waitRun(t, pool, failing.ID, runs.StageNotified)
		if n := len(s.Sims.C2S.Messages(failing.ID)); n != 1 {
			t.Fatalf("%d messages on the requeued lead, want 1", n)
		}
	})

	step("DryRunReplay", func(t *testing.T) {
		admin.open("/ui/replay", "#replay-form")
		admin.capture("replay")
		if since := run(admin, chromedp.Value(chromedp.CSS("#since"))); since != "1h" {
			t.Fatalf("since defaults to %q", since)
		}
		run(admin, chromedp.Evaluate[int](`window.__sameDocument = 3`))
		admin.do(chromedp.Click(chromedp.CSS("#preview-replay")), chromedp.WaitVisible(chromedp.CSS("#replay-preview")))
		if same := run(admin, chromedp.Evaluate[int](`window.__sameDocument || 0`)); same != 3 {
			t.Fatal("the preview reloaded the page instead of updating it in place")
		}
		if n, _ := strconv.Atoi(admin.text("#preview-count")); n < 2 {
			t.Fatalf("dry run selected %d leads, want both", n)
		}
		listed := admin.text("#preview-leads")
		if !strings.Contains(listed, live.ID) || !strings.Contains(listed, failing.ID) {
			t.Fatalf("preview lists:\n%s", listed)
		}
		var replays int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.replays`).Scan(&replays)
		if replays != 0 {
			t.Fatalf("the dry run recorded %d replays", replays)
		}
		admin.capture("replay-preview")
		// Run it (free and silent), and follow its progress live.
		admin.do(chromedp.Click(chromedp.CSS("#run-replay")), chromedp.WaitVisible(chromedp.CSS("#replay-progress")))
		admin.poll("the replay to finish", `(document.querySelector('#replay-status')||{}).textContent === 'done'`, 60*time.Second)
		if n, _ := strconv.Atoi(admin.text("#replay-published")); n < 2 {
			t.Fatalf("replay published %d", n)
		}
		admin.capture("replay-job")
		if msgs := len(s.Sims.C2S.Messages(live.ID)); msgs != 1 {
			t.Fatalf("a silent replay posted: %d messages", msgs)
		}
	})

	// A second console on the same stores, with scoped keys (what API_KEYS
	// scopes will give ingest) and the optional uncertain deliveries wired.
	unc := &fakeUncertain{leadID: live.ID}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cons := console.New(ctx, console.Config{Keys: scopes{"read-key": false, "admin-key-2": true}, Ops: o, Runs: runs.New(pool),
		Uncertain: unc, Log: zerolog.Nop(), Refresh: time.Second})
	mux := chi.NewRouter()
	mux.Mount(console.Base, cons)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Another browser context: its own cookies, like a second person.
	other, otherCancel := chromedp.NewContext(admin.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(otherCancel)
	if err := chromedp.Do(other, chromedp.EmulateViewport(1280, 900)); err != nil { // the tab lives as long as other
		t.Fatal(err)
	}
	scoped := &tab{t: t, ctx: other, base: srv.URL, seen: seen}

	step("ReadOnlyKey", func(t *testing.T) {
		scoped.t = t
		scoped.signIn("read-key", "#overview-body")
		if role := scoped.text("#role"); role != "read-only" {
			t.Fatalf("role badge %q", role)
		}
		scoped.open("/ui/dlq", fmt.Sprintf("#dl-%d", poisonSeq))
		scoped.capture("dlq-read-only")
		if n := run(scoped, chromedp.Evaluate[int](`document.querySelectorAll('#dlq-panel button, #dlq-panel form').length`)); n != 0 {
			t.Fatalf("a read-only key sees %d action controls on the dead letters", n)
		}
		scoped.open("/ui/uncertain", "#uncertain")
		if n := run(scoped, chromedp.Evaluate[int](`document.querySelectorAll('#uncertain-panel button').length`)); n != 0 {
			t.Fatalf("a read-only key sees %d buttons on uncertain deliveries", n)
		}
		scoped.open("/ui/leads/"+live.ID, "#lead-id")
		if n := run(scoped, chromedp.Evaluate[int](`document.querySelectorAll('#replay-lead').length`)); n != 0 {
			t.Fatal("a read-only key sees the replay button")
		}
		// A dry run is looking, so it is allowed; running is not.
		scoped.open("/ui/replay", "#replay-form")
		scoped.do(chromedp.Click(chromedp.CSS("#preview-replay")), chromedp.WaitVisible(chromedp.CSS("#replay-preview")))
		if n := run(scoped, chromedp.Evaluate[int](`document.querySelectorAll('#run-replay').length`)); n != 0 {
			t.Fatal("a read-only key sees the run button")
		}
		scoped.capture("replay-read-only")
		// The endpoints themselves answer 403 in words, with a valid CSRF token.
		got := run(scoped, chromedp.Evaluate[map[string]string](fmt.Sprintf(`(async () => {
			const csrf = document.querySelector('meta[name="csrf-token"]').content;
			const out = {};
			for (const [path, body] of [["/ui/dlq/%d/requeue", ""], ["/ui/dlq/requeue", "stage=resolver"], ["/ui/replay/run", "preview=x"],
					["/ui/uncertain/confirm", "lead_id=%s&run_id=r"], ["/ui/uncertain/repost", "lead_id=%s&run_id=r"]]) {
				const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
					body: body + "&csrf=" + encodeURIComponent(csrf)});
				out[path] = r.status + " " + (await r.text());
			}
			return out;
		})()`, poisonSeq, live.ID, live.ID), chromedp.EvalAwaitPromise))
		if len(got) != 5 {
			t.Fatalf("answers: %v", got)
		}
		for path, answer := range got {
			if !strings.HasPrefix(answer, "403 ") || !strings.Contains(answer, "needs an admin API key") {
				t.Errorf("read-only POST %s: %.200s", path, answer)
			}
		}
		if list, _ := o.DLQList(context.Background(), "resolver"); len(list) != 1 || unc.confirmed {
			t.Fatal("a read-only key changed something")
		}
		// Sign out, then act on an uncertain delivery as an admin.
		scoped.do(chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#key")))
		if msg := scoped.text("#flash"); !strings.Contains(msg, "signed out") {
			t.Fatalf("after sign-out: %q", msg)
		}
		// Signed out, a page sends the browser to sign in, and back there after.
		scoped.open("/ui/dlq", "#key")
		scoped.do(chromedp.SendKeys(chromedp.CSS("#key"), "admin-key-2"+kb.Enter), chromedp.WaitVisible(chromedp.CSS("#dead-letters")))
		scoped.open("/ui/uncertain", "#uncertain")
		scoped.capture("uncertain")
		scoped.do(chromedp.Click(chromedp.CSS("button.confirm")), chromedp.WaitVisible(chromedp.CSS("#uncertain-notice")),
			chromedp.WaitVisible(chromedp.CSS("#uncertain-empty")))
		if !unc.confirmed {
			t.Fatal("confirm did not reach the interface")
		}
	})

	step("NoRawPersonalData", func(t *testing.T) {
		var secrets []string
		for _, l := range []sim.Lead{live, failing} {
			secrets = append(secrets, l.Phone, l.Email, strings.ToLower(l.Email), l.Name)
			for _, cpf := range s.Sims.Pop.ExpectedPersons(l.ID) {
				p, _ := s.Sims.Pop.Person(cpf)
				secrets = append(secrets, cpf, brdata.FormatCPF(cpf), p.Name, p.Mother)
				secrets = append(secrets, p.Phones...)
				for _, ph := range p.Phones {
					secrets = append(secrets, brdata.FormatPhone(ph))
				}
				secrets = append(secrets, p.Emails...)
			}
		}
		if len(seen.html) < 10 {
			t.Fatalf("only %d pages captured", len(seen.html))
		}
		for name, html := range seen.html {
			pageDigits := stripIDs(html)
			for _, secret := range secrets {
				if len(secret) < 5 {
					continue
				}
				if strings.Contains(html, secret) {
					t.Errorf("page %s shows %q", name, secret)
				}
				// The digits of a CPF or phone, however punctuated.
				if d := brdata.Digits(secret); len(d) >= 10 && strings.Contains(pageDigits, d) {
					t.Errorf("page %s shows the digits of %q", name, secret)
				}
			}
		}
	})
}

// stripIDs removes hexadecimal ids (lead, run, event ids, hashes) and
// times, whose digits could spell anything, before the digits check.
func stripIDs(html string) string {
	html = regexp.MustCompile(`[0-9a-f]{16,}`).ReplaceAllString(html, "")
	html = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?`).ReplaceAllString(html, "")
	return regexp.MustCompile(`\D`).ReplaceAllString(html, "")
}
