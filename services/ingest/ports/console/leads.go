package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// window is a time filter of the runs list.
type window struct {
	Value, Label string
	D            time.Duration
}

// windows are the time filters of the runs list.
var windows = []window{
	{"1h", "last hour", time.Hour},
	{"24h", "last 24 hours", 24 * time.Hour},
	{"7d", "last 7 days", 7 * 24 * time.Hour},
	{"30d", "last 30 days", 30 * 24 * time.Hour},
}

var sources = []string{string(events.SourceWebhook), string(events.SourceMake), string(events.SourceAPI), string(events.SourceReplay)}

type leadsData struct {
	Query    string // echoed only when it is a plausible lead id
	Status   string
	Source   string
	Since    string
	Statuses []string
	Sources  []string
	Windows  []window
	Runs     []runRow
	Heading  string
	Empty    string
}

type runRow struct {
	runs.LeadRun
	Took    time.Duration
	Running bool
}

func toRunRows(list []runs.LeadRun, now time.Time) []runRow {
	out := make([]runRow, 0, len(list))
	for _, r := range list {
		row := runRow{LeadRun: r}
		if r.FinishedAt != nil {
			row.Took = r.FinishedAt.Sub(r.StartedAt)
		} else {
			row.Running, row.Took = true, now.Sub(r.StartedAt)
		}
		out = append(out, row)
	}
	return out
}

// looksPersonal: a run of 8 or more digits and nothing else is a phone
// number or a CPF typed into the lead search, never a C2S lead id; the page
// must not echo it.
func looksPersonal(q string) bool {
	if len(q) < 8 {
		return false
	}
	for _, r := range q {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *Console) leadsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := leadsData{Status: q.Get("status"), Source: q.Get("source"), Since: q.Get("since"),
		Statuses: runStatuses, Sources: sources, Windows: windows}
	v := &view{Title: "Leads", Nav: "leads", Data: &d}
	id := strings.TrimSpace(q.Get("q"))
	if id != "" {
		switch {
		case looksPersonal(id):
			v.Error = "That looks like a phone number or a CPF, not a lead id. Search by the C2S lead id; the console does not look people up."
			c.render(w, r, http.StatusBadRequest, bind(leadsHTML), v)
			return
		case !lead.ValidID(id):
			v.Error = "A lead id is 1 to 64 letters, digits, hyphens or underscores (C2S ids are 32 hexadecimal characters). Check what you typed."
			c.render(w, r, http.StatusBadRequest, bind(leadsHTML), v)
			return
		}
		d.Query = id
		if _, err := c.cfg.Runs.Trace(r.Context(), id); err == nil {
			http.Redirect(w, r, Base+"/leads/"+url.PathEscape(id), http.StatusSeeOther)
			return
		} else if !failure.Is(err, failure.KindNotFound) {
			c.storeProblem(w, r, err)
			return
		}
		list, err := c.cfg.Runs.RecentRuns(r.Context(), runs.RunFilter{LeadPrefix: id, Limit: 50})
		if err != nil {
			c.storeProblem(w, r, err)
			return
		}
		d.Runs = toRunRows(list, c.now())
		d.Heading = "Leads whose id starts with " + id
		d.Empty = "No lead with this id, or an id starting with it, was ever recorded."
		c.render(w, r, http.StatusOK, bind(leadsHTML), v)
		return
	}
	f := runs.RunFilter{Limit: 100}
	if d.Status != "" && !contains(runStatuses, d.Status) {
		d.Status = ""
	}
	if d.Source != "" && !contains(sources, d.Source) {
		d.Source = ""
	}
	f.Status, f.Source = d.Status, d.Source
	f.Since = c.now().Add(-24 * time.Hour)
	if d.Since == "" {
		d.Since = "24h"
	}
	for _, win := range windows {
		if win.Value == d.Since {
			f.Since = c.now().Add(-win.D)
		}
	}
	list, err := c.cfg.Runs.RecentRuns(r.Context(), f)
	if err != nil {
		c.storeProblem(w, r, err)
		return
	}
	d.Runs = toRunRows(list, c.now())
	d.Heading = "Recent runs"
	d.Empty = "No run matches these filters."
	c.render(w, r, http.StatusOK, bind(leadsHTML), v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// storeProblem explains a failed read without the database's words.
func (c *Console) storeProblem(w http.ResponseWriter, r *http.Request, err error) {
	c.cfg.Log.Warn().Err(err).Str("path", r.URL.Path).Msg("console: read failed")
	c.problem(w, r, sessionOf(r), http.StatusServiceUnavailable,
		"The data could not be read right now (Postgres or NATS did not answer). Try again in a moment; the error is in the ingest log.")
}

type leadData struct {
	LeadID     string
	Status     string
	Message    *runs.MessageStatus
	Resolution *resolution
	Runs       []runView
}

type resolution struct {
	Stage, Outcome string
	At             time.Time
	Phone, Email   string // "found (diretrix)"
	Persons        []person
}

type person struct{ CPF, Role, PhoneSource, EmailSource string }

type runView struct {
	runs.Run
	Took    time.Duration
	Running bool
	Steps   []stepView
}

type stepView struct {
	Stage, Outcome, Error string
	At                    time.Time
	After                 time.Duration // since the previous step of the run
	Detail                []kv
}

func (c *Console) leadPage(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !lead.ValidID(id) || looksPersonal(id) {
		c.problem(w, r, sessionOf(r), http.StatusBadRequest, "That is not a lead id. Lead ids are 1 to 64 letters, digits, hyphens or underscores.")
		return
	}
	t, err := c.cfg.Runs.Trace(r.Context(), id)
	if failure.Is(err, failure.KindNotFound) {
		c.problem(w, r, sessionOf(r), http.StatusNotFound,
			"No run of lead "+id+" was recorded. Check the id; a lead the pipeline never received has no timeline.")
		return
	}
	if err != nil {
		c.storeProblem(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, bind(leadHTML), &view{Title: "Lead " + short(id), Nav: "leads", Data: buildLead(t, c.now())})
}

func buildLead(t *runs.Trace, now time.Time) *leadData {
	d := &leadData{LeadID: t.LeadID, Status: t.Status, Message: t.Message}
	byRun := map[string][]runs.Step{}
	for _, st := range t.Steps {
		byRun[st.RunID] = append(byRun[st.RunID], st)
		// Oldest first: the latest resolution wins.
		if st.Stage == runs.StageResolved || (st.Stage == runs.StageUnresolved && isResolverStep(st.Detail)) {
			d.Resolution = buildResolution(st)
		}
	}
	for _, run := range t.Runs {
		rv := runView{Run: run}
		if run.FinishedAt != nil {
			rv.Took = run.FinishedAt.Sub(run.StartedAt)
		} else {
			rv.Running, rv.Took = true, now.Sub(run.StartedAt)
		}
		rv.Error = maskText(run.Error)
		prev := run.StartedAt
		for _, st := range byRun[run.RunID] {
			sv := stepView{Stage: st.Stage, Outcome: st.Outcome, Error: maskText(st.Error), At: st.At, Detail: maskedDetail(st.Detail)}
			if st.At.After(prev) {
				sv.After = st.At.Sub(prev)
			}
			prev = st.At
			rv.Steps = append(rv.Steps, sv)
		}
		d.Runs = append(d.Runs, rv)
	}
	return d
}

// isResolverStep tells the resolver's "unresolved" (it has the phone and
// email states) from the enricher's (no Work API data).
func isResolverStep(detail json.RawMessage) bool {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(detail, &m)
	_, ok := m["phone"]
	return ok
}

func buildResolution(st runs.Step) *resolution {
	res := &resolution{Stage: st.Stage, Outcome: st.Outcome, At: st.At}
	var raw map[string]any
	if json.Unmarshal(st.Detail, &raw) != nil {
		return res
	}
	m, _ := ops.Mask(raw).(map[string]any)
	res.Phone, res.Email = identifierState(m["phone"]), identifierState(m["email"])
	list, _ := m["persons"].([]any)
	for _, p := range list {
		pm, _ := p.(map[string]any)
		str := func(k string) string { s, _ := pm[k].(string); return s }
		res.Persons = append(res.Persons, person{CPF: str("cpf"), Role: str("role"), PhoneSource: str("phone_source"), EmailSource: str("email_source")})
	}
	return res
}

func identifierState(v any) string {
	m, _ := v.(map[string]any)
	state, _ := m["state"].(string)
	source, _ := m["source"].(string)
	switch {
	case state == "":
		return "-"
	case source != "":
		return state + " (" + source + ")"
	}
	return state
}
