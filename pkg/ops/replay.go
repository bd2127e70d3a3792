package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// ReplayRequest selects events of one lead subject and says how to replay
// them. The same JSON is the body of POST /api/v1/admin/replay.
type ReplayRequest struct {
	// Subject is one of events.LeadSubjects; "" = leads.received.
	Subject string `json:"subject,omitempty"`
	// Since and Until bound the time the events were stored: RFC 3339, or a
	// duration such as "2h" or "3d" meaning that long ago.
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`
	// FromSeq and ToSeq bound the stream sequence (inclusive; 0 = open).
	FromSeq uint64 `json:"from_seq,omitempty"`
	ToSeq   uint64 `json:"to_seq,omitempty"`
	// Leads keeps only these lead ids.
	Leads []string `json:"leads,omitempty"`
	// Sources keeps only events with these sources. Empty selects every
	// source but "replay", so replaying twice never replays a replay.
	Sources []string `json:"sources,omitempty"`
	// ReplayID resumes an earlier replay: events it already published are
	// skipped. "" = a new replay.
	ReplayID string `json:"replay_id,omitempty"`
	// Refresh pays for fresh Work API data; Notify posts the message again.
	// Both default to off: a replay re-derives rows at no cost, silently.
	Refresh bool `json:"refresh,omitempty"`
	Notify  bool `json:"notify,omitempty"`
	// DryRun selects and lists lead ids, publishing and recording nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// Rate caps published events per second (0 = unlimited) so a big replay
	// does not starve live traffic.
	Rate float64 `json:"rate,omitempty"`
}

// ReplaySummary is the outcome. Selected = Published + Skipped + Failed
// (+ ToPublish on a dry run).
type ReplaySummary struct {
	ReplayID  string         `json:"replay_id,omitempty"`
	Subject   string         `json:"subject"`
	DryRun    bool           `json:"dry_run,omitempty"`
	Selected  int            `json:"selected"`
	ToPublish int            `json:"to_publish,omitempty"` // dry run only
	Published int            `json:"published"`
	Skipped   int            `json:"skipped"`
	Failed    int            `json:"failed"`
	Reasons   map[string]int `json:"skipped_reasons,omitempty"`
	// Leads lists the lead ids a dry run would replay (no personal data).
	Leads []string `json:"leads,omitempty"`
}

// Skip reasons.
const (
	SkipSuperseded = "superseded"       // a later event of the same lead is replayed instead
	SkipInvalid    = "invalid"          // not a decodable event of the subject
	SkipGone       = "gone"             // deleted or aged out between selection and publish
	SkipReplayed   = "already_replayed" // this replay id already ran it (resume)
	SkipDuplicate  = "duplicate"        // JetStream had the event already (resume)
)

// ReplayHooks report progress (the CLI's progress bar).
type ReplayHooks struct {
	OnSelected func(toPublish int) // selection done
	OnEvent    func()              // one selected event handled
}

var replayIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

type selection struct {
	subject, eventType string
	since, until       time.Time
	fromSeq, toSeq     uint64
	leads              map[string]bool
	sources            map[events.Source]bool
}

// ParseWhen reads a selector time: RFC 3339, or a duration ago ("90m",
// "2h", "3d").
func ParseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a positive duration such as 2h or 3d", s)
	}
	return now.Add(-d), nil
}

func typeOf(subject string) (string, bool) {
	for _, t := range []string{events.TypeReceived, events.TypeResolved, events.TypeUnresolved, events.TypeEnriched, events.TypeNotified} {
		if s, _ := events.SubjectOf(t); s == subject {
			return t, true
		}
	}
	return "", false
}

// compile validates the request, naming every problem at once.
func (o *Ops) compile(req ReplayRequest) (selection, error) {
	var problems []string
	sel := selection{subject: req.Subject, fromSeq: req.FromSeq, toSeq: req.ToSeq}
	if sel.subject == "" {
		sel.subject = events.SubjectReceived
	}
	var ok bool
	if sel.eventType, ok = typeOf(sel.subject); !ok {
		problems = append(problems, fmt.Sprintf("subject %q is not one of %s", sel.subject, strings.Join(events.LeadSubjects, ", ")))
	}
	now := o.now()
	var err error
	if sel.since, err = ParseWhen(req.Since, now); err != nil {
		problems = append(problems, "since: "+err.Error())
	}
	if sel.until, err = ParseWhen(req.Until, now); err != nil {
		problems = append(problems, "until: "+err.Error())
	}
	if !sel.since.IsZero() && !sel.until.IsZero() && sel.until.Before(sel.since) {
		problems = append(problems, "until is before since")
	}
	if sel.toSeq > 0 && sel.fromSeq > sel.toSeq {
		problems = append(problems, "from-seq is after to-seq")
	}
	if len(req.Leads) > 0 {
		sel.leads = map[string]bool{}
		for _, id := range req.Leads {
			if !lead.ValidID(id) {
				problems = append(problems, fmt.Sprintf("lead id %q is malformed", id))
				continue
			}
			sel.leads[id] = true
		}
	}
	sel.sources = map[events.Source]bool{}
	for _, s := range req.Sources {
		if !events.Source(s).Valid() {
			problems = append(problems, fmt.Sprintf("source %q is not one of c2s_webhook, make, api, replay", s))
		}
		sel.sources[events.Source(s)] = true
	}
	if req.ReplayID != "" && !replayIDPattern.MatchString(req.ReplayID) {
		problems = append(problems, "replay id must be 1-64 letters, digits or _.:-")
	}
	if req.Rate < 0 {
		problems = append(problems, "rate must not be negative")
	}
	if len(problems) > 0 {
		return sel, failure.Permanent("ops.replay", errors.New(strings.Join(problems, "; ")))
	}
	return sel, nil
}

func (s selection) sourceOK(src events.Source) bool {
	if len(s.sources) == 0 {
		return src != events.SourceReplay
	}
	return s.sources[src]
}

// filtered says whether a message that cannot be decoded could still match.
func (s selection) filtered() bool { return len(s.leads) > 0 || len(s.sources) > 0 }

// NewReplayID returns a fresh, sortable replay id.
func NewReplayID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "rp-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

type pick struct {
	seq  uint64
	lead string
}

// Replay selects events with an ordered consumer (never touching them) and
// publishes one new event per selected lead, from the lead's latest
// selected event, with source "replay", a replay id and a new run id. The
// run is started in pipeline.lead_runs so it shows in the lead's trace, and
// the replay is recorded in pipeline.replays.
func (o *Ops) Replay(ctx context.Context, req ReplayRequest, hooks ReplayHooks) (*ReplaySummary, error) {
	sel, err := o.compile(req)
	if err != nil {
		return nil, err
	}
	if !req.DryRun {
		if err := o.needDB("ops.replay"); err != nil {
			return nil, err
		}
	}
	sum := &ReplaySummary{Subject: sel.subject, DryRun: req.DryRun, Reasons: map[string]int{}}
	st, err := o.stream(ctx)
	if err != nil {
		return nil, err
	}
	picks, err := o.selectEvents(ctx, st, sel, sum)
	if err != nil {
		return nil, err
	}
	if hooks.OnSelected != nil {
		hooks.OnSelected(len(picks))
	}
	if req.DryRun {
		sum.ToPublish = len(picks)
		for _, p := range picks {
			sum.Leads = append(sum.Leads, p.lead)
		}
		return tidy(sum), nil
	}
	sum.ReplayID = req.ReplayID
	if sum.ReplayID == "" {
		sum.ReplayID = NewReplayID(o.now())
	}
	if err := o.recordReplay(ctx, req, sum, false); err != nil {
		return nil, err
	}
	var limiter *rate.Limiter
	if req.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(req.Rate), 1)
	}
	var runErr error
	for _, p := range picks {
		if limiter != nil {
			if runErr = limiter.Wait(ctx); runErr != nil {
				break
			}
		}
		reason, err := o.replayOne(ctx, st, sel, req, sum.ReplayID, p.seq)
		switch {
		case err != nil && ctx.Err() != nil:
			runErr = ctx.Err()
		case err != nil:
			sum.Failed++
		case reason != "":
			sum.skip(reason)
		default:
			sum.Published++
		}
		if runErr != nil {
			break
		}
		if hooks.OnEvent != nil {
			hooks.OnEvent()
		}
	}
	// Record the counts even when interrupted: the operator resumes with
	// the same replay id.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := o.recordReplay(rctx, req, sum, runErr == nil); err != nil && runErr == nil {
		runErr = err
	}
	return tidy(sum), runErr
}

func tidy(s *ReplaySummary) *ReplaySummary {
	if len(s.Reasons) == 0 {
		s.Reasons = nil
	}
	return s
}

func (s *ReplaySummary) skip(reason string) {
	s.Skipped++
	s.Reasons[reason]++
}

// selectEvents scans the subject up to the stream's current end and keeps
// each lead's latest matching event.
func (o *Ops) selectEvents(ctx context.Context, st jetstream.Stream, sel selection, sum *ReplaySummary) ([]pick, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return nil, failure.Transient("ops.replay", err)
	}
	end := info.State.LastSeq
	if sel.toSeq > 0 && sel.toSeq < end {
		end = sel.toSeq
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{sel.subject}}
	switch {
	case sel.fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, sel.fromSeq
	case !sel.since.IsZero():
		since := sel.since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	latest := map[string]uint64{}
	var order []pick
	err = o.scan(ctx, st, cfg, end, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		if md.Sequence.Stream < sel.fromSeq ||
			(!sel.since.IsZero() && md.Timestamp.Before(sel.since)) ||
			(!sel.until.IsZero() && md.Timestamp.After(sel.until)) {
			return nil
		}
		var probe struct {
			LeadID string        `json:"lead_id"`
			Source events.Source `json:"source"`
		}
		if json.Unmarshal(m.Data(), &probe) != nil || !lead.ValidID(probe.LeadID) {
			if !sel.filtered() {
				sum.Selected++
				sum.skip(SkipInvalid)
			}
			return nil
		}
		if (sel.leads != nil && !sel.leads[probe.LeadID]) || !sel.sourceOK(probe.Source) {
			return nil
		}
		sum.Selected++
		if _, seen := latest[probe.LeadID]; seen {
			sum.skip(SkipSuperseded)
		}
		latest[probe.LeadID] = md.Sequence.Stream
		order = append(order, pick{seq: md.Sequence.Stream, lead: probe.LeadID})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(order, func(p pick) bool { return latest[p.lead] != p.seq }), nil
}

// replayOne publishes the replay of the event at seq. It returns a skip
// reason, or an error when the event could not be replayed now.
func (o *Ops) replayOne(ctx context.Context, st jetstream.Stream, sel selection, req ReplayRequest, replayID string, seq uint64) (string, error) {
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return SkipGone, nil
	}
	if err != nil {
		return "", failure.Transient("ops.replay", err)
	}
	orig, err := events.Decode(raw.Data, sel.eventType, nil)
	if err != nil {
		return SkipInvalid, nil
	}
	env := Replayed(orig, replayID, req.Refresh, req.Notify, o.now())
	// JetStream deduplicates only within its window; the run table makes
	// resuming a replay id safe at any age. A run still at "received" may
	// never have been published (a crash in between), so it goes again.
	var status string
	err = o.Pool.QueryRow(ctx, `SELECT status FROM pipeline.lead_runs WHERE run_id = $1`, env.RunID).Scan(&status)
	switch {
	case err == nil && status != runs.StageReceived:
		return SkipReplayed, nil
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return "", store.Classify("ops.replay", err)
	}
	if err := runs.StartRun(ctx, o.Pool, env); err != nil {
		return "", err
	}
	payload, err := json.Marshal(env)
	if err != nil {
		return SkipInvalid, nil
	}
	dup, err := o.publish(ctx, sel.subject, env.MsgID(), env.CorrelationID, env.Type, payload)
	if err != nil {
		return "", err
	}
	if dup {
		return SkipDuplicate, nil
	}
	return "", nil
}

// Replayed is the new event a replay publishes for orig: the same type and
// data, source "replay", and a run id derived from (replay id, original
// event id), so re-running a replay id is deduplicated.
func Replayed(orig events.Envelope, replayID string, refresh, notify bool, now time.Time) events.Envelope {
	env := orig
	runID := events.ID("replay", replayID, orig.EventID)
	env.RunID, env.CorrelationID = runID, runID
	if orig.Type == events.TypeReceived {
		env.EventID = runID // a run's id is the id of the event that started it
	} else {
		env.EventID = events.ID(orig.Type, runID) // as events.New derives it
	}
	env.Source, env.ReplayID = events.SourceReplay, replayID
	env.Refresh, env.Notify = refresh, notify
	env.OccurredAt = now.UTC()
	return env
}

func (o *Ops) recordReplay(ctx context.Context, req ReplayRequest, sum *ReplaySummary, finished bool) error {
	selector, _ := json.Marshal(struct {
		Since   string   `json:"since,omitempty"`
		Until   string   `json:"until,omitempty"`
		FromSeq uint64   `json:"from_seq,omitempty"`
		ToSeq   uint64   `json:"to_seq,omitempty"`
		Leads   int      `json:"leads,omitempty"` // how many; the ids are in the runs
		Sources []string `json:"sources,omitempty"`
		Rate    float64  `json:"rate,omitempty"`
	}{req.Since, req.Until, req.FromSeq, req.ToSeq, len(req.Leads), req.Sources, req.Rate})
	_, err := o.Pool.Exec(ctx, `INSERT INTO pipeline.replays (replay_id, subject, selector, refresh, notify, selected, published, skipped, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $9 THEN now() END)
		ON CONFLICT (replay_id) DO UPDATE SET selector = EXCLUDED.selector, refresh = EXCLUDED.refresh, notify = EXCLUDED.notify,
			selected = EXCLUDED.selected, published = EXCLUDED.published, skipped = EXCLUDED.skipped, finished_at = EXCLUDED.finished_at`,
		sum.ReplayID, sum.Subject, selector, req.Refresh, req.Notify, sum.Selected, sum.Published, sum.Skipped+sum.Failed, finished)
	if err != nil {
		return store.Classify("ops.replay.record", err)
	}
	return nil
}
