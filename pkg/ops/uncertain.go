package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// An uncertain delivery is a message post whose outcome is unknown (its
// reply was lost) on a lead whose document lists no messages, so nobody can
// tell whether the seller sees it. The notifier stops there (ledger status
// uncertain, run status uncertain, a dead letter saying "uncertain
// delivery"). An operator looks at the lead in C2S and then either confirms
// it (it is there: mark it sent, post nothing) or reposts it (it is not:
// post it once more). Both go through the notifications ledger under the
// lead's lock, so a repost posts at most once however often it is asked for.

// Resolution statuses.
const (
	ResolvedConfirmed   = "confirmed"    // marked sent without posting
	ResolvedAlreadySent = "already_sent" // the ledger already said sent: nothing done
	ResolvedQueued      = "queued"       // repost requested; the notifier posts it
)

// ConfirmReason and RepostReason are what the ledger and the trace record.
const (
	ConfirmReason = "confirmed by an operator"
	RepostReason  = "repost requested by an operator"
)

// Resolution is the outcome of a confirm or a repost.
type Resolution struct {
	LeadID string `json:"lead_id"`
	RunID  string `json:"run_id"`
	Stage  string `json:"stage"`
	// Status: confirmed, already_sent, queued, or after a repost's wait the
	// ledger's status (sent; uncertain when the repost's reply was lost too).
	Status string `json:"status"`
	Route  string `json:"route,omitempty"`
	// MsgID is the Nats-Msg-Id a repost published the event under.
	MsgID string `json:"msg_id,omitempty"`
	// DeadLetters is how many of the delivery's dead letters were removed.
	DeadLetters int `json:"dead_letters_removed,omitempty"`
}

// UncertainList lists the deliveries waiting for an operator (uncertain,
// repost requested, or posting without an end for over
// ledger.StaleAfter), oldest first; leadID "" lists every lead.
func (o *Ops) UncertainList(ctx context.Context, leadID string) ([]ledger.Entry, error) {
	if err := o.needDB("ops.uncertain"); err != nil {
		return nil, err
	}
	if leadID != "" && !lead.ValidID(leadID) {
		return nil, failure.Permanent("ops.uncertain", fmt.Errorf("lead id %q is malformed", leadID))
	}
	return ledger.ListOpen(ctx, o.Pool, leadID)
}

func (o *Ops) openDelivery(ctx context.Context, op, leadID, runID string) (*ledger.Session, error) {
	if err := o.needDB(op); err != nil {
		return nil, err
	}
	if !lead.ValidID(leadID) || runID == "" || len(runID) > 128 {
		return nil, failure.Permanent(op, errors.New("give a lead id and a run id (leadflowctl uncertain list shows them)"))
	}
	s, err := ledger.OpenRun(ctx, o.Pool, leadID, runID)
	if failure.Is(err, failure.KindNotFound) {
		return nil, failure.New(failure.KindNotFound, op, fmt.Errorf("no delivery of run %s on lead %s", runID, leadID))
	}
	return s, err
}

var errNothingPosted = errors.New("nothing was posted for this run (the pipeline posts it when it retries): there is nothing to confirm or repost")

// UncertainConfirm marks an uncertain delivery sent without posting, after
// an operator saw the message on the lead: the run ends notified
// (already_sent, reason "confirmed by an operator"), lead.notified is
// published and the delivery's dead letters are removed. Confirming a
// delivery the ledger already has as sent does nothing.
func (o *Ops) UncertainConfirm(ctx context.Context, leadID, runID string) (*Resolution, error) {
	const op = "ops.confirm"
	s, res, err := o.openUncertain(ctx, op, leadID, runID)
	if s == nil || err != nil {
		return res, err
	}
	defer s.Close()
	e := s.Entry
	// The trace and the event first, the ledger last: an interrupted confirm
	// is finished by running it again (both are keyed by the run).
	parent, err := o.parentOf(ctx, e)
	if err != nil {
		return nil, err
	}
	out := events.LeadNotified{Status: "already_sent", Route: e.Route, MessageHash: e.MessageHash, Reason: ConfirmReason}
	env, err := events.New(events.TypeNotified, &parent, out)
	if err != nil {
		return nil, failure.Permanent(op, err)
	}
	if err := runs.Record(ctx, o.Pool, env, runs.Outcome{Stage: runs.StageNotified, Outcome: out.Status,
		Detail: map[string]any{"route": out.Route, "message_hash": out.MessageHash, "reason": out.Reason}}); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(env)
	if err != nil {
		return nil, failure.Permanent(op, err)
	}
	if _, err := o.publish(ctx, events.SubjectNotified, env.MsgID(), env.CorrelationID, env.Type, payload); err != nil {
		return nil, err
	}
	if err := s.Finish(ctx, ledger.StatusSent, "", ConfirmReason); err != nil {
		return nil, err
	}
	res.Status = ResolvedConfirmed
	res.DeadLetters = o.dropDeadLetters(ctx, e)
	return res, nil
}

// UncertainRepost posts an uncertain delivery once more, after an operator
// saw that the message is not on the lead. The ledger entry becomes repost
// and the run's original event is published again (from its dead letter,
// or the stream); the notifier then posts through the same ledger without
// checking, and records it sent. A second repost of the same delivery
// posts nothing: once the ledger says sent it answers already_sent, and
// before that the event is deduplicated or finds the entry sent. With wait
// > 0 it waits that long for the notifier's outcome.
func (o *Ops) UncertainRepost(ctx context.Context, leadID, runID string, wait time.Duration) (*Resolution, error) {
	const op = "ops.repost"
	s, res, err := o.openUncertain(ctx, op, leadID, runID)
	if s == nil || err != nil {
		return res, err
	}
	defer s.Close()
	e := s.Entry
	if o.JS == nil {
		return nil, failure.Permanent(op, errors.New("a repost needs NATS (--nats or NATS_URL)"))
	}
	ev, err := o.originalEvent(ctx, e)
	if err != nil {
		return nil, err
	}
	if err := s.Finish(ctx, ledger.StatusRepost, "", RepostReason); err != nil {
		return nil, err
	}
	// The same id for every repost request until a post starts: asking
	// twice publishes once (and the notifier would find the entry sent).
	res.MsgID = fmt.Sprintf("%s:%s:repost:%d", ev.Type, ev.EventID, e.Attempts)
	if _, err := o.publish(ctx, ev.subject, res.MsgID, ev.CorrelationID, ev.Type, ev.raw); err != nil {
		return nil, err
	}
	res.Status = ResolvedQueued
	res.DeadLetters = o.dropDeadLetters(ctx, e)
	if wait <= 0 {
		return res, nil
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return res, nil
		case <-time.After(200 * time.Millisecond):
		}
		cur, err := ledger.Get(ctx, o.Pool, e.LeadID, e.RunID)
		if err == nil && cur.Status != ledger.StatusRepost && cur.Status != ledger.StatusPosting {
			res.Status, res.Route = cur.Status, cur.Route
			return res, nil
		}
	}
	return res, nil
}

// parentOf rebuilds the envelope a delivery's lead.notified continues.
func (o *Ops) parentOf(ctx context.Context, e ledger.Entry) (events.Envelope, error) {
	env := events.Envelope{LeadID: e.LeadID, RunID: e.RunID, CorrelationID: e.RunID, Source: events.SourceAPI}
	var source, replayID string
	err := o.Pool.QueryRow(ctx, `SELECT source, COALESCE(replay_id, '') FROM pipeline.lead_runs WHERE run_id = $1`, e.RunID).Scan(&source, &replayID)
	switch {
	case err == nil && events.Source(source).Valid():
		env.Source, env.ReplayID = events.Source(source), replayID
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return env, store.Classify("ops.confirm", err)
	case e.RunKey != e.RunID:
		env.Source, env.ReplayID = events.SourceReplay, e.RunKey
	}
	env.Notify = env.Source == events.SourceReplay // a replay that posted had --notify
	return env, nil
}

// stageEvent is the event type and subject a delivery's stage answers.
func stageEvent(stage string) (eventType, subject string) {
	if stage == ledger.StageUnresolved {
		return events.TypeUnresolved, events.SubjectUnresolved
	}
	return events.TypeEnriched, events.SubjectEnriched
}

type original struct {
	events.Envelope
	raw     []byte
	subject string
}

// probe decodes what identifies an event of a delivery.
func probeEvent(b []byte) (events.Envelope, bool) {
	var env events.Envelope
	if json.Unmarshal(b, &env) != nil {
		return env, false
	}
	return env, true
}

func (e original) of(d ledger.Entry, eventType string) bool {
	return e.LeadID == d.LeadID && e.RunID == d.RunID && e.Type == eventType
}

// originalEvent finds the event a delivery answers: in its newest dead
// letter, else in the stream (from the run's start).
func (o *Ops) originalEvent(ctx context.Context, d ledger.Entry) (*original, error) {
	eventType, subject := stageEvent(d.Stage)
	var found *original
	err := o.notifierDeadLetters(ctx, d, func(_ uint64, dl events.DeadLetter) {
		if env, ok := probeEvent(dl.Event); ok {
			cand := original{Envelope: env, raw: dl.Event, subject: subject}
			if cand.of(d, eventType) {
				found = &cand
			}
		}
	})
	if err != nil || found != nil {
		return found, err
	}
	st, err := o.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, failure.Transient("ops.repost", err)
	}
	since := d.CreatedAt.Add(-24 * time.Hour)
	var started time.Time
	if o.Pool.QueryRow(ctx, `SELECT started_at FROM pipeline.lead_runs WHERE run_id = $1`, d.RunID).Scan(&started) == nil {
		since = started.Add(-time.Minute)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	errFound := errors.New("found")
	err = o.scan(ctx, st, cfg, info.State.LastSeq, func(m jetstream.Msg, _ *jetstream.MsgMetadata) error {
		if env, ok := probeEvent(m.Data()); ok {
			cand := original{Envelope: env, raw: append([]byte(nil), m.Data()...), subject: subject}
			if cand.of(d, eventType) {
				found = &cand
				return errFound
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	if found == nil {
		return nil, failure.New(failure.KindNotFound, "ops.repost",
			fmt.Errorf("the %s event of run %s is neither in a dead letter nor in the stream any more (STREAM_MAX_AGE); replay the lead with --notify instead", eventType, d.RunID))
	}
	return found, nil
}

// notifierDeadLetters calls fn for each notifier dead letter of the
// delivery's lead and run.
func (o *Ops) notifierDeadLetters(ctx context.Context, d ledger.Entry, fn func(seq uint64, dl events.DeadLetter)) error {
	st, err := o.stream(ctx)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return failure.Transient("ops.dlq", err)
	}
	return o.scan(ctx, st, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectDeadLetter}}, info.State.LastSeq,
		func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
			var dl events.DeadLetter
			if json.Unmarshal(m.Data(), &dl) != nil || dl.LeadID != d.LeadID || !StageMatches(dl.Stage, "notifier") {
				return nil
			}
			if env, ok := probeEvent(dl.Event); ok && env.RunID == d.RunID {
				fn(md.Sequence.Stream, dl)
			}
			return nil
		})
}

// dropDeadLetters removes the delivery's notifier dead letters: it is
// resolved, and a requeue of them would only find it sent. Best effort.
func (o *Ops) dropDeadLetters(ctx context.Context, d ledger.Entry) int {
	if o.JS == nil {
		return 0
	}
	var seqs []uint64
	if err := o.notifierDeadLetters(ctx, d, func(seq uint64, _ events.DeadLetter) { seqs = append(seqs, seq) }); err != nil {
		return 0
	}
	st, err := o.stream(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, seq := range seqs {
		if err := st.DeleteMsg(ctx, seq); err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
			n++
		}
	}
	return n
}

// openUncertain opens the delivery of (lead, run) for an operator's
// decision. A delivery already sent answers already_sent (and no session);
// one that never posted has nothing to decide.
func (o *Ops) openUncertain(ctx context.Context, op, leadID, runID string) (*ledger.Session, *Resolution, error) {
	s, err := o.openDelivery(ctx, op, leadID, runID)
	if err != nil {
		return nil, nil, err
	}
	e := s.Entry
	res := &Resolution{LeadID: e.LeadID, RunID: e.RunID, Stage: e.Stage, Route: e.Route}
	switch e.Status {
	case ledger.StatusSent:
		s.Close()
		res.Status = ResolvedAlreadySent
		return nil, res, nil
	case ledger.StatusPending:
		s.Close()
		return nil, nil, failure.Permanent(op, errNothingPosted)
	}
	return s, res, nil
}
