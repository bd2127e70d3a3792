package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// DeadLetter is one entry of leads.dlq, without personal data.
type DeadLetter struct {
	Seq             uint64    `json:"seq"`
	Stage           string    `json:"stage"`
	Reason          string    `json:"reason"`
	FailedAt        time.Time `json:"failed_at"`
	LeadID          string    `json:"lead_id,omitempty"`
	OriginalSubject string    `json:"original_subject"`
	Deliveries      int       `json:"deliveries,omitempty"`
}

// StageMatches reports whether a dead letter's stage (a consumer name such
// as "enricher__leads_resolved") matches a --stage filter: the consumer
// name or just the service name.
func StageMatches(stage, filter string) bool {
	return filter == "" || stage == filter || strings.HasPrefix(stage, filter+"__")
}

// DLQList lists the dead letters, oldest first, optionally of one stage.
func (o *Ops) DLQList(ctx context.Context, stage string) ([]DeadLetter, error) {
	st, err := o.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, failure.Transient("ops.dlq", err)
	}
	out := []DeadLetter{}
	err = o.scan(ctx, st, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectDeadLetter}}, info.State.LastSeq,
		func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
			dl := parseDeadLetter(md.Sequence.Stream, m.Data(), md.Timestamp)
			if StageMatches(dl.Stage, stage) {
				out = append(out, dl)
			}
			return nil
		})
	return out, err
}

// parseDeadLetter tolerates anything on the subject: an entry that is not a
// dead-letter document still lists, with a reason saying so.
func parseDeadLetter(seq uint64, data []byte, stored time.Time) DeadLetter {
	var d events.DeadLetter
	if err := json.Unmarshal(data, &d); err != nil {
		return DeadLetter{Seq: seq, Reason: "not a dead-letter document", FailedAt: stored}
	}
	if d.FailedAt.IsZero() {
		d.FailedAt = stored
	}
	return DeadLetter{Seq: seq, Stage: d.Stage, Reason: d.Reason, FailedAt: d.FailedAt, LeadID: d.LeadID,
		OriginalSubject: d.OriginalSubject, Deliveries: d.Deliveries}
}

// DLQShow returns the dead letter at seq as JSON: the document with its
// original event decoded, personal data masked unless reveal.
func (o *Ops) DLQShow(ctx context.Context, seq uint64, reveal bool) (json.RawMessage, error) {
	_, raw, err := o.getDeadLetter(ctx, seq)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw.Data, &doc); err != nil {
		return nil, failure.Permanent("ops.dlq", fmt.Errorf("message %d is not a dead-letter document", seq))
	}
	doc["seq"] = seq
	// An undecodable original is shown as text when it is text: still
	// masked, since it may be a half-written envelope.
	if b64, ok := doc["raw_base64"].(string); ok {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
			doc["raw_text"] = string(b)
		}
	}
	var v any = doc
	if !reveal {
		v = Mask(doc)
	}
	return json.MarshalIndent(v, "", "  ")
}

func (o *Ops) getDeadLetter(ctx context.Context, seq uint64) (jetstream.Stream, *jetstream.RawStreamMsg, error) {
	st, err := o.stream(ctx)
	if err != nil {
		return nil, nil, err
	}
	raw, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, failure.NotFound("ops.dlq")
	}
	if err != nil {
		return nil, nil, failure.Transient("ops.dlq", err)
	}
	if raw.Subject != events.SubjectDeadLetter {
		// Sequences are stream-wide: refuse to act on a live event.
		return nil, nil, failure.NotFound("ops.dlq")
	}
	return st, raw, nil
}

// Requeued is the result of one requeue.
type Requeued struct {
	Seq       uint64 `json:"seq"`
	LeadID    string `json:"lead_id,omitempty"`
	Subject   string `json:"subject"`
	MsgID     string `json:"msg_id"`
	Duplicate bool   `json:"duplicate,omitempty"` // an earlier requeue of this entry was already stored
}

// DLQRequeue publishes the original event of dead letter seq back to its
// original subject with a new message id (original id + ":requeue:" + seq,
// so JetStream lets it in but a repeated requeue of the same entry is
// deduplicated), then deletes the dead letter.
func (o *Ops) DLQRequeue(ctx context.Context, seq uint64) (*Requeued, error) {
	st, raw, err := o.getDeadLetter(ctx, seq)
	if err != nil {
		return nil, err
	}
	var d events.DeadLetter
	if err := json.Unmarshal(raw.Data, &d); err != nil {
		return nil, failure.Permanent("ops.requeue", fmt.Errorf("dead letter %d is not a dead-letter document", seq))
	}
	if _, ok := typeOf(d.OriginalSubject); !ok {
		return nil, failure.Permanent("ops.requeue", fmt.Errorf("dead letter %d has no lead subject to go back to (%q)", seq, d.OriginalSubject))
	}
	payload := []byte(d.Event)
	if len(payload) == 0 {
		if payload, err = base64.StdEncoding.DecodeString(d.RawBase64); err != nil || len(payload) == 0 {
			return nil, failure.Permanent("ops.requeue", fmt.Errorf("dead letter %d carries no original event", seq))
		}
	}
	base := d.OriginalMsgID
	if base == "" {
		base = "dlq"
	}
	res := &Requeued{Seq: seq, LeadID: d.LeadID, Subject: d.OriginalSubject, MsgID: base + ":requeue:" + strconv.FormatUint(seq, 10)}
	var probe struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(payload, &probe)
	correlation := raw.Header.Get(middleware.CorrelationIDMetadataKey)
	if res.Duplicate, err = o.publish(ctx, d.OriginalSubject, res.MsgID, correlation, probe.Type, payload); err != nil {
		return nil, err
	}
	// Only once the event is stored again does the dead letter go.
	if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return res, failure.Transient("ops.requeue", err)
	}
	return res, nil
}

// RequeueSummary is the result of a bulk requeue.
type RequeueSummary struct {
	Requeued []Requeued `json:"requeued"`
	Failed   []string   `json:"failed,omitempty"` // "seq: error"
}

// DLQRequeueAll requeues every dead letter, optionally of one stage.
func (o *Ops) DLQRequeueAll(ctx context.Context, stage string) (*RequeueSummary, error) {
	list, err := o.DLQList(ctx, stage)
	if err != nil {
		return nil, err
	}
	sum := &RequeueSummary{Requeued: []Requeued{}}
	for _, dl := range list {
		r, err := o.DLQRequeue(ctx, dl.Seq)
		if err != nil {
			if ctx.Err() != nil {
				return sum, ctx.Err()
			}
			sum.Failed = append(sum.Failed, fmt.Sprintf("%d: %v", dl.Seq, err))
			continue
		}
		sum.Requeued = append(sum.Requeued, *r)
	}
	return sum, nil
}

// DLQPurge deletes dead letters (all, or one stage's) and returns how many.
func (o *Ops) DLQPurge(ctx context.Context, stage string) (int, error) {
	st, err := o.stream(ctx)
	if err != nil {
		return 0, err
	}
	if stage == "" {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.SubjectDeadLetter))
		if err != nil {
			return 0, failure.Transient("ops.purge", err)
		}
		n := int(info.State.Subjects[events.SubjectDeadLetter])
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(events.SubjectDeadLetter)); err != nil {
			return 0, failure.Transient("ops.purge", err)
		}
		return n, nil
	}
	list, err := o.DLQList(ctx, stage)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, dl := range list {
		if err := st.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, failure.Transient("ops.purge", err)
		}
		n++
	}
	return n, nil
}

// DLQCount is how many dead letters the stream holds.
func (o *Ops) DLQCount(ctx context.Context) (int, error) {
	st, err := o.stream(ctx)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.SubjectDeadLetter))
	if err != nil {
		return 0, failure.Transient("ops.dlq", err)
	}
	return int(info.State.Subjects[events.SubjectDeadLetter]), nil
}

// personal keys and how each is masked; anything under "payload" (a raw
// Work API answer) or "data" of an unknown shape is walked the same way.
var maskers = map[string]func(string) string{
	"name": nameMask, "nome": nameMask, "mother": nameMask, "nome_mae": nameMask,
	"phone": phoneMask, "phone2": phoneMask, "telefone": phoneMask, "celular": phoneMask,
	"email": emailMask,
	"cpf":   cpfMask, "documento": cpfMask,
	"raw_base64": redact, "raw_text": redact,
}

// Mask returns a copy of a decoded JSON document with personal data masked
// through pkg/logging's helpers: names, phones, emails and CPFs by key,
// raw Work API payloads redacted, and any other string holding an 11-digit
// run (a CPF or a phone) masked too.
func Mask(v any) any { return maskValue("", v) }

func maskValue(key string, v any) any {
	k := strings.ToLower(key)
	switch x := v.(type) {
	case map[string]any:
		if k == "payload" {
			return redact("x")
		}
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for kk := range x {
			keys = append(keys, kk)
		}
		slices.Sort(keys)
		for _, kk := range keys {
			out[kk] = maskValue(kk, x[kk])
		}
		return out
	case []any:
		if k == "payload" {
			return redact("x")
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskValue(key, e)
		}
		return out
	case string:
		if f, ok := maskers[k]; ok {
			return f(x)
		}
		if k == "payload" {
			return redact(x)
		}
		if isIdentifierKey(k) {
			return x
		}
		// Other strings (reasons, unknown fields) may embed personal data
		// in free text.
		return maskDigits(x)
	}
	return v
}
