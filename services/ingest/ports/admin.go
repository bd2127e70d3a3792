package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/ops"
)

// Admin is the operator API: the same pkg/ops code as leadflowctl, behind
// the API key (it is mounted through Server.Extra). Every key may read
// (dead letters, uncertain deliveries, a replay that neither pays nor
// posts); only admin keys may replay with refresh or notify, requeue and
// purge dead letters, and confirm or repost uncertain deliveries (403).
type Admin struct {
	Ops *ops.Ops
	Log zerolog.Logger
}

// maxAdminBody bounds a replay request (a long --lead list fits easily).
const maxAdminBody = 1 << 20

// Routes mounts the admin endpoints on r.
func (a Admin) Routes(r chi.Router) {
	r.Post("/api/v1/admin/replay", a.replay)
	r.Get("/api/v1/admin/dlq", a.dlqList)
	r.Delete("/api/v1/admin/dlq", a.dlqPurge)
	r.Post("/api/v1/admin/dlq/{seq}/requeue", a.dlqRequeue)
	r.Get("/api/v1/admin/uncertain", a.uncertainList)
	r.Post("/api/v1/admin/uncertain/{lead_id}/{run_id}/confirm", a.uncertainConfirm)
	r.Post("/api/v1/admin/uncertain/{lead_id}/{run_id}/repost", a.uncertainRepost)
}

// replay runs a replay synchronously and answers its summary. A dropped
// connection stops it between events; the counts are recorded and the same
// replay_id resumes it. Big replays belong to `leadflowctl replay --rate`.
func (a Admin) replay(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	}
	var req ops.ReplayRequest
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields() // a misspelt selector must not widen a replay
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "body must be a replay request: "+err.Error())
			return
		}
	}
	// Paying for fresh data or posting again needs an admin key; a dry
	// run or a silent replay does not.
	if (req.Refresh || req.Notify) && !requireAdmin(w, r) {
		return
	}
	sum, err := a.Ops.Replay(r.Context(), req, ops.ReplayHooks{})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info().Str("replay_id", sum.ReplayID).Str("subject", sum.Subject).Bool("dry_run", sum.DryRun).
		Int("selected", sum.Selected).Int("published", sum.Published).Int("skipped", sum.Skipped).Int("failed", sum.Failed).Msg("replay")
	status := http.StatusOK
	if sum.Failed > 0 {
		status = http.StatusBadGateway // part of it could not be published
	}
	writeJSON(w, status, map[string]any{"success": sum.Failed == 0, "summary": sum})
}

func (a Admin) dlqList(w http.ResponseWriter, r *http.Request) {
	list, err := a.Ops.DLQList(r.Context(), r.URL.Query().Get("stage"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "count": len(list), "dead_letters": list})
}

func (a Admin) dlqRequeue(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, "seq must be a stream sequence")
		return
	}
	res, err := a.Ops.DLQRequeue(r.Context(), seq)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info().Uint64("seq", seq).Str("lead_id", res.LeadID).Str("subject", res.Subject).Msg("dead letter requeued")
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "requeued": res})
}

// dlqPurge deletes the dead letters (all, or ?stage=).
func (a Admin) dlqPurge(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	stage := r.URL.Query().Get("stage")
	n, err := a.Ops.DLQPurge(r.Context(), stage)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Warn().Str("stage", stage).Int("purged", n).Msg("dead letters purged")
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "purged": n})
}

// uncertainList lists deliveries waiting for an operator (?lead= for one).
func (a Admin) uncertainList(w http.ResponseWriter, r *http.Request) {
	list, err := a.Ops.UncertainList(r.Context(), r.URL.Query().Get("lead"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "count": len(list), "deliveries": list})
}

// uncertainConfirm marks an uncertain delivery sent without posting.
func (a Admin) uncertainConfirm(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	res, err := a.Ops.UncertainConfirm(r.Context(), chi.URLParam(r, "lead_id"), chi.URLParam(r, "run_id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info().Str("lead_id", res.LeadID).Str("run_id", res.RunID).Str("status", res.Status).Msg("uncertain delivery confirmed")
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "delivery": res})
}

// uncertainRepost posts an uncertain delivery once more (through the
// notifier and its ledger); ?wait=N waits up to N seconds (max 60) for it.
func (a Admin) uncertainRepost(w http.ResponseWriter, r *http.Request) {
	if !requireAdmin(w, r) {
		return
	}
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	wait = min(max(wait, 0), 60)
	res, err := a.Ops.UncertainRepost(r.Context(), chi.URLParam(r, "lead_id"), chi.URLParam(r, "run_id"), time.Duration(wait)*time.Second)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.Log.Info().Str("lead_id", res.LeadID).Str("run_id", res.RunID).Str("status", res.Status).Msg("uncertain delivery reposted")
	status := http.StatusOK
	if res.Status == ops.ResolvedQueued {
		status = http.StatusAccepted
	}
	writeJSON(w, status, map[string]any{"success": res.Status != "uncertain", "delivery": res})
}

// fail answers a classified error; validation problems are the operator's
// own input, so they are echoed.
func (a Admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *failure.Error
	switch {
	case failure.Is(err, failure.KindPermanent) && errors.As(err, &fe) && fe.Err != nil:
		writeError(w, http.StatusBadRequest, fe.Err.Error())
	case failure.Is(err, failure.KindNotFound) && errors.As(err, &fe) && fe.Err != nil:
		writeError(w, http.StatusNotFound, fe.Err.Error()) // ids only, no personal data
	case failure.Is(err, failure.KindNotFound):
		writeError(w, http.StatusNotFound, "not found")
	default:
		status := statusOf(err)
		a.Log.Error().Err(err).Str("path", r.URL.Path).Int("status", status).Msg("admin request failed")
		writeError(w, status, http.StatusText(status))
	}
}
