package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5"

	"github.com/leadflow/leadflow/pkg/ops"
)

// view is what every page and fragment receives.
type view struct {
	Title     string
	Nav       string // the active section
	SignedIn  bool
	Admin     bool
	CSRF      string
	Uncertain bool // the uncertain deliveries section is wired
	Flash     string
	Error     string
	Data      any
}

// A page draws a view: a whole page, or a fragment (an htmx swap target or
// a live update). The pages are the templ components in the *.templ files.
type page func(*view) templ.Component

// bind makes a page of a component that takes the view and its data. The
// page fails to draw (the handler answers 500) when the view's Data is not
// a T.
func bind[T any](c func(*view, T) templ.Component) page {
	return func(v *view) templ.Component {
		d, ok := v.Data.(T)
		if !ok {
			return templ.ComponentFunc(func(context.Context, io.Writer) error {
				return fmt.Errorf("console: the view's data is a %T, the page wants a %T", v.Data, d)
			})
		}
		return c(v, d)
	}
}

// render writes a whole page, or for htmx requests the same page (the pages
// are written so that their main part is also a fragment).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, p page, v *view) {
	c.fill(r, v)
	c.execute(w, r, status, p, v)
}

// fragment writes one part of a page (an htmx swap target).
func (c *Console) fragment(w http.ResponseWriter, r *http.Request, status int, p page, v *view) {
	c.fill(r, v)
	c.execute(w, r, status, p, v)
}

func (c *Console) fill(r *http.Request, v *view) {
	s := sessionOf(r)
	if s == nil {
		s = c.sessions.get(r)
	}
	if s != nil {
		v.SignedIn, v.Admin, v.CSRF = true, s.admin, s.csrf
		if v.Flash == "" && !isHTMX(r) {
			v.Flash = s.takeFlash()
		}
	}
	v.Uncertain = c.cfg.Uncertain != nil
}

func (c *Console) execute(w http.ResponseWriter, r *http.Request, status int, p page, v *view) {
	var buf bytes.Buffer
	if err := p(v).Render(r.Context(), &buf); err != nil {
		// The route's pattern, not the path: a path may carry whatever
		// was typed into the address bar.
		c.cfg.Log.Error().Err(err).Str("route", routeOf(r)).Msg("console: template failed")
		http.Error(w, "The page could not be drawn. The error is in the ingest log.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// routeOf is the request's route pattern, e.g. "/leads/{id}".
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		return rc.RoutePattern()
	}
	return ""
}

// renderString draws a fragment into a string (live updates).
func (c *Console) renderString(p page, v *view) (string, error) {
	var buf bytes.Buffer
	err := p(v).Render(context.Background(), &buf)
	return buf.String(), err
}

// problem explains in words what went wrong: a notice for htmx swaps, a
// page otherwise.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	v := &view{Title: http.StatusText(status), Error: msg}
	if isHTMX(r) {
		c.fragment(w, r, status, noticeHTML, v)
		return
	}
	if s == nil {
		c.execute(w, r, status, problemHTML, v)
		return
	}
	c.render(w, r, status, problemHTML, v)
}

// maskText masks CPFs, phones and emails in free text (reasons, errors)
// with pkg/ops' masks, the ones leadflowctl and the admin API use.
func maskText(s string) string {
	m, _ := ops.Mask(map[string]any{"text": s}).(map[string]any)
	out, _ := m["text"].(string)
	return out
}

// kv is one line of a masked detail.
type kv struct{ K, V string }

// maskedDetail turns a stored detail (already masked when written) into
// lines, masked once more through pkg/ops so that nothing personal can
// reach the page even if a writer forgot.
func maskedDetail(raw json.RawMessage) []kv {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	masked, _ := ops.Mask(m).(map[string]any)
	keys := make([]string, 0, len(masked))
	for k := range masked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []kv
	for _, k := range keys {
		var v string
		switch x := masked[k].(type) {
		case nil:
			continue
		case string:
			v = x
		case float64:
			v = fmt.Sprint(x)
		case bool:
			v = fmt.Sprint(x)
		default:
			v = flat(x)
		}
		if v == "" {
			continue
		}
		out = append(out, kv{K: strings.ReplaceAll(k, "_", " "), V: v})
	}
	return out
}

// flat writes a nested detail value as text: "source diretrix, state
// found"; list items are separated by semicolons.
func flat(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			if s := flat(x[k]); s != "" {
				parts = append(parts, strings.ReplaceAll(k, "_", " ")+" "+s)
			}
		}
		return strings.Join(parts, ", ")
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if s := flat(e); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "; ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func base() string { return Base }

// link is a URL inside the console: Base, then path. A value of the page
// in path goes through pathPart or queryPart first.
func link(path string) templ.SafeURL { return templ.SafeURL(base() + path) }

// pathPart escapes a value as one path segment of a link, queryPart as a
// query value (net/url's escaping).
func pathPart(s string) string  { return url.PathEscape(s) }
func queryPart(s string) string { return url.QueryEscape(s) }

func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// pct is done as a whole percentage of total, at most 100.
func pct(done, total int64) int64 {
	if total <= 0 {
		return 0
	}
	return min(100, done*100/total)
}

// reasonList writes skip reasons as "3 superseded, 1 gone".
func reasonList(reasons []reasonCount) string {
	parts := make([]string, 0, len(reasons))
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", r.Count, r.Reason))
	}
	return strings.Join(parts, ", ")
}

// progressPace is what follows "n of m leads handled": ", 4.2 a second,
// about 3 min left", or less.
func progressPace(j jobView) string {
	var s string
	if j.Rate != "" {
		s += ", " + j.Rate + " a second"
	}
	if j.ETA != "" {
		s += ", about " + j.ETA + " left"
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	if d < 0 {
		d = 0
	}
	return humanDuration(d) + " ago"
}

// humanDuration: "350 ms", "4.2 s", "3 min 4 s", "2 h 5 min", "3 d 4 h".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		if int(d.Seconds())%60 == 0 {
			return fmt.Sprintf("%d min", int(d.Minutes()))
		}
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		if int(d.Minutes())%60 == 0 {
			return fmt.Sprintf("%d h", int(d.Hours()))
		}
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func short(id string) string {
	if len(id) <= 12 {
		return id
	}
	return id[:12] + "…"
}

// stageName makes a consumer name readable: "enricher__leads_resolved" is
// "enricher (leads.resolved)".
func stageName(stage string) string {
	svc, subj, ok := strings.Cut(stage, "__")
	if !ok {
		if stage == "" {
			return "unknown"
		}
		return stage
	}
	return svc + " (" + strings.ReplaceAll(subj, "_", ".") + ")"
}

// statusTone picks a colour class for a run or stage status.
func statusTone(status string) string {
	switch status {
	case "notified", "sent", "already_sent", "enriched", "resolved", "confirmed", "done":
		return "ok"
	case "failed", "dead_letter", "error", "uncertain", "cancelled":
		return "bad"
	case "unresolved", "skipped", "posting", "repost", "queued":
		return "warn"
	}
	return "info"
}

func perMin(n int, minutes float64) string {
	if minutes <= 0 {
		return "0"
	}
	v := float64(n) / minutes
	if v == 0 {
		return "0"
	}
	if v < 0.05 {
		return "under 0.1"
	}
	if v < 10 {
		return fmt.Sprintf("%.1f", math.Round(v*10)/10)
	}
	return fmt.Sprintf("%.0f", v)
}
