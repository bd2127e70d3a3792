package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/domain/lead"
)

type uncertainData struct {
	Deliveries []uncertainRow
	Notice     string
	Problem    string
}

type uncertainRow struct {
	UncertainDelivery
	Age time.Duration
}

func (c *Console) uncertainData(r *http.Request) (*uncertainData, error) {
	list, err := c.cfg.Uncertain.ListUncertain(r.Context())
	if err != nil {
		return nil, err
	}
	d := &uncertainData{}
	now := c.now()
	for _, u := range list {
		u.Reason = maskText(u.Reason)
		d.Deliveries = append(d.Deliveries, uncertainRow{UncertainDelivery: u, Age: now.Sub(u.CreatedAt)})
	}
	return d, nil
}

func (c *Console) uncertainPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Uncertain == nil {
		c.notFound(w, r)
		return
	}
	d, err := c.uncertainData(r)
	if err != nil {
		c.storeProblem(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, bind(uncertainHTML), &view{Title: "Uncertain deliveries", Nav: "uncertain", Data: d})
}

func (c *Console) uncertainConfirm(w http.ResponseWriter, r *http.Request) {
	c.uncertainAction(w, r, "confirm")
}

func (c *Console) uncertainRepost(w http.ResponseWriter, r *http.Request) {
	c.uncertainAction(w, r, "repost")
}

func (c *Console) uncertainAction(w http.ResponseWriter, r *http.Request, action string) {
	if c.cfg.Uncertain == nil {
		c.notFound(w, r)
		return
	}
	s := sessionOf(r)
	leadID, runID := strings.TrimSpace(r.PostFormValue("lead_id")), strings.TrimSpace(r.PostFormValue("run_id"))
	var (
		status, notice, problem string
		err                     error
		code                    = http.StatusOK
	)
	if !lead.ValidID(leadID) || runID == "" || len(runID) > 128 {
		code, problem = http.StatusBadRequest, "The form did not name a delivery (a lead id and a run id). Reload the page and try again."
	} else {
		if action == "confirm" {
			status, err = c.cfg.Uncertain.ConfirmDelivery(r.Context(), leadID, runID)
		} else {
			status, err = c.cfg.Uncertain.RepostDelivery(r.Context(), leadID, runID)
		}
		if err != nil {
			code, problem = opsProblem(err, "That delivery is no longer waiting for an operator.")
			if code >= 500 {
				c.cfg.Log.Error().Err(err).Str("lead_id", leadID).Str("action", action).Msg("console: uncertain delivery action failed")
			}
		} else {
			c.cfg.Log.Info().Str("key", s.keyID).Str("lead_id", leadID).Str("run_id", runID).Str("action", action).Str("status", status).
				Msg("console: uncertain delivery resolved")
			notice = "Lead " + leadID + ": the delivery was confirmed as posted (" + status + ")."
			if action == "repost" {
				notice = "Lead " + leadID + ": the message will be posted once more (" + status + ")."
			}
		}
	}
	if !isHTMX(r) {
		if problem != "" {
			c.problem(w, r, s, code, problem)
			return
		}
		s.setFlash(notice)
		http.Redirect(w, r, Base+"/uncertain", http.StatusSeeOther)
		return
	}
	d, lerr := c.uncertainData(r)
	if lerr != nil {
		c.storeProblem(w, r, lerr)
		return
	}
	d.Notice, d.Problem = notice, problem
	c.fragment(w, r, code, bind(uncertainPanelHTML), &view{Data: d})
}
