package console

import (
	"context"
	"net/http"
	"time"

	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// overview is one reading of the pipeline, shared by every open overview
// for a moment so that many viewers cost one query.
type overview struct {
	At        time.Time
	Counts    []countRow
	CountsErr string
	Rates     []rateRow
	Status    *ops.Status
	StatusErr string
	Consumers []consumerRow
}

type countRow struct {
	ID, Label, Help string
	Hour, Day       int
}

type rateRow struct {
	Label, Recent, Hour string
}

type consumerRow struct {
	ops.ConsumerStatus
	Stalled bool // something waits and the oldest has waited over 5 min
}

// snapshot returns a reading no older than half the refresh period.
func (c *Console) snapshot(ctx context.Context) *overview {
	c.ovMu.Lock()
	defer c.ovMu.Unlock()
	now := c.now()
	if c.ov != nil && now.Sub(c.ov.At) < c.cfg.Refresh/2 {
		return c.ov
	}
	// Shared by every viewer: one viewer leaving must not spoil the reading.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ov := &overview{At: now}
	counts, err := c.cfg.Runs.CountStages(ctx, now.Add(-5*time.Minute), now.Add(-time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		c.cfg.Log.Warn().Err(err).Msg("console: stage counts")
		ov.CountsErr = "The counts could not be read from Postgres. The error is in the ingest log."
	} else {
		recent, hour, day := counts[0], counts[1], counts[2]
		ov.Counts = []countRow{
			{"received", "Received", "runs started (webhooks, Make, API, replays)", hour.Received, day.Received},
			{"resolved", "Resolved", "a person found behind the phone or email", hour.Resolved, day.Resolved},
			{"unresolved", "Unresolved", "nobody found, or no Work API data", hour.Unresolved, day.Unresolved},
			{"enriched", "Enriched", "profile stored in core.*", hour.Enriched, day.Enriched},
			{"notified", "Notified", "run finished at the notifier", hour.Notified, day.Notified},
			{"sent", "Messages posted", "a message posted on the lead in C2S", hour.Sent, day.Sent},
			{"failed", "Dead-lettered", "runs that ended in the dead letters", hour.Failed, day.Failed},
		}
		ov.Rates = []rateRow{
			{"Leads received", perMin(recent.Received, 5), perMin(hour.Received, 60)},
			{"Runs notified", perMin(recent.Notified, 5), perMin(hour.Notified, 60)},
			{"Dead-lettered", perMin(recent.Failed, 5), perMin(hour.Failed, 60)},
		}
	}
	st, err := c.cfg.Ops.Status(ctx)
	if err != nil {
		c.cfg.Log.Warn().Err(err).Msg("console: stream status")
		ov.StatusErr = "The stream's status could not be read from NATS JetStream. The error is in the ingest log."
	} else {
		ov.Status = st
		for _, cs := range st.Consumers {
			ov.Consumers = append(ov.Consumers, consumerRow{ConsumerStatus: cs,
				Stalled: (cs.Pending > 0 || cs.AckPending > 0) && cs.OldestAge > 5*time.Minute})
		}
	}
	c.ov = ov
	return ov
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, bind(overviewHTML), &view{Title: "Overview", Nav: "overview", Data: c.snapshot(r.Context())})
}

// overviewStream pushes the overview's body every refresh period.
func (c *Console) overviewStream(w http.ResponseWriter, r *http.Request) {
	c.stream(w, r, c.cfg.Refresh, func() (string, string, bool) {
		// No fill: a stream must not consume the page's one-time notice.
		html, err := c.renderString(bind(overviewBodyHTML), &view{Data: c.snapshot(r.Context())})
		if err != nil {
			c.cfg.Log.Error().Err(err).Msg("console: overview template")
			return "", "", true
		}
		return "overview", html, false
	})
}

// Keep the stage names in one place for the templates' filters.
var runStatuses = []string{runs.StageReceived, runs.StageResolved, runs.StageUnresolved, runs.StageEnriched, runs.StageNotified, runs.StageFailed}
