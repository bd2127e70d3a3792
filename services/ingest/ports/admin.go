package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/ops"
)

// Admin is the operator API: the same pkg/ops code as leadflowctl, behind
// the API key (it is mounted through Server.Extra).
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
	r.Post("/api/v1/admin/dlq/{seq}/requeue", a.dlqRequeue)
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

// fail answers a classified error; validation problems are the operator's
// own input, so they are echoed.
func (a Admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *failure.Error
	switch {
	case failure.Is(err, failure.KindPermanent) && errors.As(err, &fe) && fe.Err != nil:
		writeError(w, http.StatusBadRequest, fe.Err.Error())
	case failure.Is(err, failure.KindNotFound):
		writeError(w, http.StatusNotFound, "not found")
	default:
		status := statusOf(err)
		a.Log.Error().Err(err).Str("path", r.URL.Path).Int("status", status).Msg("admin request failed")
		writeError(w, status, http.StatusText(status))
	}
}
