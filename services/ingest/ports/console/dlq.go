package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/ops"
)

type dlqData struct {
	Filter  string // the stage filter in force
	Stages  []stageGroup
	Letters []deadLetter
	Notice  string
	Problem string
}

type stageGroup struct {
	Stage string
	Count int
}

type deadLetter struct {
	ops.DeadLetter
	Age time.Duration
}

// validStage: consumer or service names ("enricher", "enricher__leads_resolved").
func validStage(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// dlqData lists the dead letters of a stage ("" = all).
func (c *Console) dlqData(r *http.Request, filter string) (*dlqData, error) {
	list, err := c.cfg.Ops.DLQList(r.Context(), filter)
	if err != nil {
		return nil, err
	}
	d := &dlqData{Filter: filter}
	counts := map[string]int{}
	now := c.now()
	for _, dl := range list {
		dl.Reason = maskText(dl.Reason)
		d.Letters = append(d.Letters, deadLetter{DeadLetter: dl, Age: now.Sub(dl.FailedAt)})
		counts[dl.Stage]++
	}
	for stage, n := range counts {
		if stage != "" {
			d.Stages = append(d.Stages, stageGroup{Stage: stage, Count: n})
		}
	}
	sort.Slice(d.Stages, func(i, j int) bool { return d.Stages[i].Stage < d.Stages[j].Stage })
	return d, nil
}

func (c *Console) dlqPage(w http.ResponseWriter, r *http.Request) {
	filter := strings.TrimSpace(r.URL.Query().Get("stage"))
	if !validStage(filter) {
		filter = ""
	}
	d, err := c.dlqData(r, filter)
	if err != nil {
		c.storeProblem(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, bind(dlqHTML), &view{Title: "Dead letters", Nav: "dlq", Data: d})
}

// afterDLQAction shows the panel again with what happened: in place for
// htmx, or as a notice on the page it redirects to.
func (c *Console) afterDLQAction(w http.ResponseWriter, r *http.Request, filter, notice string, status int, problem string) {
	s := sessionOf(r)
	if !isHTMX(r) {
		if problem != "" {
			c.problem(w, r, s, status, problem)
			return
		}
		s.setFlash(notice)
		http.Redirect(w, r, Base+"/dlq?stage="+url.QueryEscape(filter), http.StatusSeeOther)
		return
	}
	d, err := c.dlqData(r, filter)
	if err != nil {
		c.storeProblem(w, r, err)
		return
	}
	d.Notice, d.Problem = notice, problem
	c.fragment(w, r, status, bind(dlqPanelHTML), &view{Data: d})
}

// opsProblem words an error from pkg/ops for the page.
func opsProblem(err error, notFound string) (int, string) {
	var fe *failure.Error
	switch {
	case failure.Is(err, failure.KindNotFound):
		return http.StatusNotFound, notFound
	case failure.Is(err, failure.KindPermanent) && errors.As(err, &fe) && fe.Err != nil:
		return http.StatusBadRequest, maskText(fe.Err.Error())
	}
	return http.StatusServiceUnavailable, "NATS JetStream or Postgres did not answer. Nothing was changed; try again in a moment (the error is in the ingest log)."
}

func (c *Console) dlqRequeue(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	filter := r.PostFormValue("filter")
	if !validStage(filter) {
		filter = ""
	}
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		c.afterDLQAction(w, r, filter, "", http.StatusBadRequest, "That is not a dead letter's sequence number.")
		return
	}
	res, err := c.cfg.Ops.DLQRequeue(r.Context(), seq)
	if err != nil {
		status, msg := opsProblem(err, fmt.Sprintf("Dead letter %d is gone: it was requeued or purged already.", seq))
		if status >= 500 {
			c.cfg.Log.Error().Err(err).Uint64("seq", seq).Msg("console: requeue failed")
		}
		c.afterDLQAction(w, r, filter, "", status, msg)
		return
	}
	c.cfg.Log.Info().Str("key", s.keyID).Uint64("seq", seq).Str("lead_id", res.LeadID).Str("subject", res.Subject).Msg("console: dead letter requeued")
	msg := fmt.Sprintf("Dead letter %d was requeued to %s.", seq, res.Subject)
	if res.LeadID != "" {
		msg = fmt.Sprintf("Dead letter %d (lead %s) was requeued to %s.", seq, res.LeadID, res.Subject)
	}
	if res.Duplicate {
		msg += " It had been requeued before, so the stream kept the earlier copy."
	}
	c.afterDLQAction(w, r, filter, msg, http.StatusOK, "")
}

func (c *Console) dlqRequeueStage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	filter := r.PostFormValue("filter")
	if !validStage(filter) {
		filter = ""
	}
	stage := strings.TrimSpace(r.PostFormValue("stage"))
	if stage == "" || !validStage(stage) {
		c.afterDLQAction(w, r, filter, "", http.StatusBadRequest, "Choose the stage whose dead letters to requeue.")
		return
	}
	sum, err := c.cfg.Ops.DLQRequeueAll(r.Context(), stage)
	if err != nil && sum == nil {
		status, msg := opsProblem(err, "There are no dead letters of that stage.")
		c.afterDLQAction(w, r, filter, "", status, msg)
		return
	}
	c.cfg.Log.Info().Str("key", s.keyID).Str("stage", stage).Int("requeued", len(sum.Requeued)).Int("failed", len(sum.Failed)).Msg("console: dead letters requeued")
	msg := fmt.Sprintf("%d dead letters of %s were requeued.", len(sum.Requeued), stageName(stage))
	if len(sum.Requeued) == 1 {
		msg = fmt.Sprintf("1 dead letter of %s was requeued.", stageName(stage))
	}
	if len(sum.Failed) > 0 || err != nil {
		c.afterDLQAction(w, r, filter, msg, http.StatusBadGateway,
			fmt.Sprintf("%d could not be requeued; they are still listed. Try again in a moment.", len(sum.Failed)))
		return
	}
	c.afterDLQAction(w, r, filter, msg, http.StatusOK, "")
}

type dlqDetailData struct {
	Seq      uint64
	Stage    string
	Reason   string
	LeadID   string
	Subject  string
	FailedAt time.Time
	Document string // the masked document, indented
}

func (c *Console) dlqDetail(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		c.problem(w, r, sessionOf(r), http.StatusBadRequest, "That is not a dead letter's sequence number.")
		return
	}
	raw, err := c.cfg.Ops.DLQShow(r.Context(), seq, false) // masked, as leadflowctl dlq show
	if err != nil {
		status, msg := opsProblem(err, fmt.Sprintf("Dead letter %d is gone: it was requeued or purged, or it never existed.", seq))
		c.problem(w, r, sessionOf(r), status, msg)
		return
	}
	var doc struct {
		Stage           string    `json:"stage"`
		Reason          string    `json:"reason"`
		LeadID          string    `json:"lead_id"`
		OriginalSubject string    `json:"original_subject"`
		FailedAt        time.Time `json:"failed_at"`
	}
	_ = json.Unmarshal(raw, &doc)
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(raw)
	}
	d := dlqDetailData{Seq: seq, Stage: doc.Stage, Reason: doc.Reason, LeadID: doc.LeadID, Subject: doc.OriginalSubject,
		FailedAt: doc.FailedAt, Document: pretty.String()}
	c.render(w, r, http.StatusOK, bind(dlqDetailHTML), &view{Title: fmt.Sprintf("Dead letter %d", seq), Nav: "dlq", Data: d})
}
