package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/ops"
)

// replayForm is the replay form as typed.
type replayForm struct {
	Subject  string
	Since    string
	Until    string
	Leads    string
	Source   string
	Refresh  bool
	Notify   bool
	Rate     string
	Subjects []string
	Sources  []string
}

// Preview is what a dry run selected, with what running it will cost.
type replayPreview struct {
	ID        string // the kept preview that the run button runs
	Summary   *ops.ReplaySummary
	Leads     []string // the first leads, for the page
	More      int      // how many more leads the dry run selected
	Refresh   bool
	Notify    bool
	Reasons   []reasonCount
	CanRun    bool
	RateLabel string
}

type reasonCount struct {
	Reason string
	Count  int
}

type replayData struct {
	Form    replayForm
	Problem string
	Preview *replayPreview
	Jobs    []jobView
}

const (
	defaultReplayRate = "10"
	previewTTL        = 15 * time.Minute
	previewLeads      = 100
)

func newForm() replayForm {
	return replayForm{Subject: events.SubjectReceived, Rate: defaultReplayRate, Subjects: events.LeadSubjects, Sources: sources}
}

// parseReplay reads the form into a request, naming every problem in words.
func parseReplay(r *http.Request) (replayForm, ops.ReplayRequest, []string) {
	f := newForm()
	var problems []string
	f.Subject = strings.TrimSpace(r.PostFormValue("subject"))
	if f.Subject == "" {
		f.Subject = events.SubjectReceived
	}
	if !contains(events.LeadSubjects, f.Subject) {
		problems = append(problems, "Choose one of the listed subjects.")
		f.Subject = events.SubjectReceived
	}
	f.Since, f.Until = strings.TrimSpace(r.PostFormValue("since")), strings.TrimSpace(r.PostFormValue("until"))
	f.Leads = r.PostFormValue("leads")
	f.Source = strings.TrimSpace(r.PostFormValue("source"))
	f.Refresh, f.Notify = r.PostFormValue("refresh") == "on", r.PostFormValue("notify") == "on"
	f.Rate = strings.TrimSpace(r.PostFormValue("rate"))
	req := ops.ReplayRequest{Subject: f.Subject, Since: f.Since, Until: f.Until, Refresh: f.Refresh, Notify: f.Notify}
	if f.Source != "" {
		if !contains(sources, f.Source) {
			problems = append(problems, "Choose one of the listed sources.")
			f.Source = ""
		} else {
			req.Sources = []string{f.Source}
		}
	}
	bad, personal := 0, 0
	seen := map[string]bool{}
	for _, id := range strings.FieldsFunc(f.Leads, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		switch {
		case looksPersonal(id):
			personal++
		case !lead.ValidID(id):
			bad++
		case !seen[id]:
			seen[id] = true
			req.Leads = append(req.Leads, id)
		}
	}
	if personal > 0 {
		problems = append(problems, "The lead ids include what looks like a phone number or a CPF. Give C2S lead ids only.")
		f.Leads = "" // never echo personal data back into the page
	}
	if bad > 0 {
		problems = append(problems, fmt.Sprintf("%d of the lead ids are malformed: a lead id is 1 to 64 letters, digits, hyphens or underscores.", bad))
	}
	if f.Rate == "" {
		f.Rate = "0"
	}
	rate, err := strconv.ParseFloat(f.Rate, 64)
	if err != nil || rate < 0 || rate > 1000 {
		problems = append(problems, "The pace must be a number of events per second from 0 (no limit) to 1000.")
	}
	req.Rate = rate
	if f.Since == "" && len(req.Leads) == 0 && personal == 0 && bad == 0 {
		problems = append(problems, "Give a start time or lead ids. Without either, a replay selects every lead in the stream (30 days).")
	}
	return f, req, problems
}

func (c *Console) replayPage(w http.ResponseWriter, r *http.Request) {
	f := newForm()
	f.Since = "1h"
	if ids := r.URL.Query()["lead"]; len(ids) > 0 {
		var ok []string
		for _, id := range ids {
			if lead.ValidID(id) && !looksPersonal(id) {
				ok = append(ok, id)
			}
		}
		f.Leads, f.Since = strings.Join(ok, "\n"), ""
	}
	c.render(w, r, http.StatusOK, bind(replayHTML), &view{Title: "Replay", Nav: "replay",
		Data: &replayData{Form: f, Jobs: c.replays.views(c.now())}})
}

// replayPreview runs the dry run: it selects, lists the leads and publishes
// and records nothing. The request is kept in the session under an id, and
// only a kept preview can be run: what runs is exactly what was shown.
func (c *Console) replayPreview(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	f, req, problems := parseReplay(r)
	d := &replayData{Form: f, Jobs: c.replays.views(c.now())}
	v := &view{Title: "Replay", Nav: "replay", Data: d}
	answer := func(status int) {
		if isHTMX(r) {
			c.fragment(w, r, status, bind(replayResultHTML), v)
			return
		}
		c.render(w, r, status, bind(replayHTML), v)
	}
	if len(problems) > 0 {
		d.Problem = strings.Join(problems, " ")
		answer(http.StatusBadRequest)
		return
	}
	dry := req
	dry.DryRun = true
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	sum, err := c.cfg.Ops.Replay(ctx, dry, ops.ReplayHooks{})
	if err != nil {
		status, msg := opsProblem(err, "The stream has nothing to replay.")
		if status >= 500 {
			c.cfg.Log.Error().Err(err).Msg("console: replay dry run failed")
		}
		d.Problem = msg
		answer(status)
		return
	}
	p := &replayPreview{Summary: sum, Refresh: req.Refresh, Notify: req.Notify, CanRun: s.admin && sum.ToPublish > 0}
	p.Leads = sum.Leads
	if len(p.Leads) > previewLeads {
		p.Leads, p.More = p.Leads[:previewLeads], len(sum.Leads)-previewLeads
	}
	for reason, n := range sum.Reasons {
		p.Reasons = append(p.Reasons, reasonCount{reason, n})
	}
	sort.Slice(p.Reasons, func(i, j int) bool { return p.Reasons[i].Reason < p.Reasons[j].Reason })
	p.RateLabel = "as fast as possible"
	if req.Rate > 0 {
		p.RateLabel = strconv.FormatFloat(req.Rate, 'f', -1, 64) + " events a second"
	}
	if p.CanRun {
		p.ID = randomToken()[:16]
		s.addPreview(p.ID, preview{req: req, expires: c.now().Add(previewTTL)}, c.now())
	}
	d.Preview = p
	answer(http.StatusOK)
}

func (c *Console) replayRun(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	id := r.PostFormValue("preview")
	req, ok := s.preview(id, c.now())
	if !ok {
		c.problem(w, r, s, http.StatusConflict, "That preview has expired or was already run. Preview the replay again, then run it.")
		return
	}
	if (req.Refresh || req.Notify) && r.PostFormValue("confirm") != "yes" {
		c.problem(w, r, s, http.StatusBadRequest, "Tick the box that says you understand what this replay costs and who sees it, then run it again.")
		return
	}
	req.ReplayID = ops.NewReplayID(c.now())
	j, running := c.replays.start(c.ctx, c.cfg.Ops, req, s.keyID, c.now())
	if j == nil {
		c.problem(w, r, s, http.StatusConflict, "Replay "+running+" is still running. Wait for it to finish, or cancel it, before starting another.")
		return
	}
	s.dropPreview(id)
	c.cfg.Log.Info().Str("key", s.keyID).Str("replay_id", j.id).Str("subject", req.Subject).Int("leads", len(req.Leads)).
		Bool("refresh", req.Refresh).Bool("notify", req.Notify).Msg("console: replay started")
	if isHTMX(r) {
		w.Header().Set("HX-Redirect", Base+"/replay/jobs/"+j.id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, Base+"/replay/jobs/"+j.id, http.StatusSeeOther)
}

func (c *Console) replayJobPage(w http.ResponseWriter, r *http.Request) {
	j := c.replays.get(chi.URLParam(r, "id"))
	if j == nil {
		c.problem(w, r, sessionOf(r), http.StatusNotFound,
			"This process has no replay with that id (the console keeps the last few since ingest started). Its runs are in each lead's timeline.")
		return
	}
	c.render(w, r, http.StatusOK, bind(replayJobHTML), &view{Title: "Replay " + j.id, Nav: "replay", Data: j.view(c.now())})
}

// replayJobStream pushes the progress until the replay ends.
func (c *Console) replayJobStream(w http.ResponseWriter, r *http.Request) {
	j := c.replays.get(chi.URLParam(r, "id"))
	if j == nil {
		http.Error(w, "no such replay", http.StatusNotFound)
		return
	}
	admin := sessionOf(r).admin
	c.stream(w, r, 500*time.Millisecond, func() (string, string, bool) {
		jv := j.view(c.now())
		html, err := c.renderString(bind(replayProgressHTML), &view{Admin: admin, CSRF: sessionOf(r).csrf, Data: jv})
		if err != nil {
			c.cfg.Log.Error().Err(err).Msg("console: replay progress template")
			return "", "", true
		}
		return "progress", html, jv.Done
	})
}

func (c *Console) replayCancel(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	j := c.replays.get(chi.URLParam(r, "id"))
	if j == nil {
		c.problem(w, r, s, http.StatusNotFound, "This process has no replay with that id.")
		return
	}
	j.stop()
	c.cfg.Log.Info().Str("key", s.keyID).Str("replay_id", j.id).Msg("console: replay cancelled")
	s.setFlash("Replay " + j.id + " was asked to stop. What it published stays published; run it again with the same id from leadflowctl to resume.")
	http.Redirect(w, r, Base+"/replay/jobs/"+j.id, http.StatusSeeOther)
}

// replays are the console's replay jobs in this process (the last few).
type replays struct {
	mu    sync.Mutex
	jobs  map[string]*job
	order []string
}

const keepJobs = 20

func newReplays() *replays { return &replays{jobs: map[string]*job{}} }

type job struct {
	id      string
	req     ops.ReplayRequest
	by      string
	started time.Time
	cancel  context.CancelFunc

	toPublish atomic.Int64 // -1 while selecting
	handled   atomic.Int64
	done      chan struct{}

	mu        sync.Mutex
	sum       *ops.ReplaySummary
	err       error
	finished  time.Time
	cancelled bool
}

// start runs req in the background unless a replay is running; then it
// returns nil and the running replay's id.
func (rs *replays) start(ctx context.Context, o Ops, req ops.ReplayRequest, by string, now time.Time) (*job, string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, j := range rs.jobs {
		select {
		case <-j.done:
		default:
			return nil, j.id
		}
	}
	jctx, cancel := context.WithCancel(ctx)
	j := &job{id: req.ReplayID, req: req, by: by, started: now, cancel: cancel, done: make(chan struct{})}
	j.toPublish.Store(-1)
	rs.jobs[j.id] = j
	rs.order = append(rs.order, j.id)
	for len(rs.order) > keepJobs {
		delete(rs.jobs, rs.order[0])
		rs.order = rs.order[1:]
	}
	go func() {
		defer cancel()
		sum, err := o.Replay(jctx, req, ops.ReplayHooks{
			OnSelected: func(n int) { j.toPublish.Store(int64(n)) },
			OnEvent:    func() { j.handled.Add(1) },
		})
		j.mu.Lock()
		j.sum, j.err, j.finished = sum, err, time.Now()
		j.mu.Unlock()
		close(j.done)
	}()
	return j, ""
}

func (rs *replays) get(id string) *job {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.jobs[id]
}

// views lists the jobs, newest first.
func (rs *replays) views(now time.Time) []jobView {
	rs.mu.Lock()
	list := make([]*job, 0, len(rs.order))
	for i := len(rs.order) - 1; i >= 0; i-- {
		list = append(list, rs.jobs[rs.order[i]])
	}
	rs.mu.Unlock()
	out := make([]jobView, 0, len(list))
	for _, j := range list {
		out = append(out, j.view(now))
	}
	return out
}

func (j *job) stop() {
	j.mu.Lock()
	j.cancelled = true
	j.mu.Unlock()
	j.cancel()
}

// jobView is a reading of a job for the page.
type jobView struct {
	ID        string
	Subject   string
	Leads     int
	Since     string
	Refresh   bool
	Notify    bool
	Started   time.Time
	Selecting bool
	ToPublish int64
	Handled   int64
	Rate      string // events a second so far
	ETA       string
	Done      bool
	Cancelled bool
	Status    string // running, done, failed, cancelled
	Summary   *ops.ReplaySummary
	Reasons   []reasonCount
	Error     string
	Took      time.Duration
}

func (j *job) view(now time.Time) jobView {
	v := jobView{ID: j.id, Subject: j.req.Subject, Leads: len(j.req.Leads), Since: j.req.Since, Refresh: j.req.Refresh,
		Notify: j.req.Notify, Started: j.started, ToPublish: j.toPublish.Load(), Handled: j.handled.Load(), Status: "running"}
	v.Selecting = v.ToPublish < 0
	select {
	case <-j.done:
		v.Done = true
	default:
	}
	j.mu.Lock()
	sum, err, finished, cancelled := j.sum, j.err, j.finished, j.cancelled
	j.mu.Unlock()
	end := now
	if v.Done {
		end = finished
	}
	v.Took = end.Sub(j.started)
	if secs := v.Took.Seconds(); secs > 0 && v.Handled > 0 {
		rate := float64(v.Handled) / secs
		v.Rate = strconv.FormatFloat(rate, 'f', 1, 64)
		if left := v.ToPublish - v.Handled; !v.Done && left > 0 {
			v.ETA = humanDuration(time.Duration(float64(left) / rate * float64(time.Second)))
		}
	}
	if !v.Done {
		return v
	}
	v.Summary = sum
	if sum != nil {
		for reason, n := range sum.Reasons {
			v.Reasons = append(v.Reasons, reasonCount{reason, n})
		}
		sort.Slice(v.Reasons, func(a, b int) bool { return v.Reasons[a].Reason < v.Reasons[b].Reason })
	}
	switch {
	case cancelled:
		v.Cancelled, v.Status = true, "cancelled"
		v.Error = "Stopped by an operator. What was published stays published; `leadflowctl replay --replay-id " + j.id + "` with the same selection resumes it."
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		v.Status = "failed"
		v.Error = "Stopped because ingest was shutting down. Resume with `leadflowctl replay --replay-id " + j.id + "` and the same selection."
	case err != nil:
		v.Status = "failed"
		_, msg := opsProblem(err, "The stream has nothing to replay.")
		v.Error = msg
	case sum != nil && sum.Failed > 0:
		v.Status = "failed"
		v.Error = fmt.Sprintf("%d events could not be published. Resume with `leadflowctl replay --replay-id %s` and the same selection.", sum.Failed, j.id)
	default:
		v.Status = "done"
	}
	return v
}
