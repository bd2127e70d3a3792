// Package events defines the versioned JSON events the services exchange over
// NATS JetStream: one stream, one subject per event type, and a dead-letter
// subject. Subjects and message ids never contain personal data; payloads do
// (customer contacts, CPFs) and are logged only through pkg/logging masks.
package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

// Stream and subjects.
const (
	StreamName = "LEADS"
	// StreamSubjects is what the stream captures.
	StreamSubjects = "leads.>"

	SubjectReceived   = "leads.received"
	SubjectResolved   = "leads.resolved"
	SubjectUnresolved = "leads.unresolved"
	SubjectEnriched   = "leads.enriched"
	SubjectNotified   = "leads.notified"
	SubjectDeadLetter = "leads.dlq"
)

// LeadSubjects are the subjects a replay may select.
var LeadSubjects = []string{SubjectReceived, SubjectResolved, SubjectUnresolved, SubjectEnriched, SubjectNotified}

// SchemaVersion is the version of every payload defined here. A consumer
// dead-letters an event whose version it does not know.
const SchemaVersion = 1

// Type names, carried in the envelope.
const (
	TypeReceived   = "lead.received"
	TypeResolved   = "lead.resolved"
	TypeUnresolved = "lead.unresolved"
	TypeEnriched   = "lead.enriched"
	TypeNotified   = "lead.notified"
	TypeDeadLetter = "lead.dead_letter"
)

// SubjectOf maps an event type to its subject.
func SubjectOf(eventType string) (string, bool) {
	s, ok := map[string]string{
		TypeReceived:   SubjectReceived,
		TypeResolved:   SubjectResolved,
		TypeUnresolved: SubjectUnresolved,
		TypeEnriched:   SubjectEnriched,
		TypeNotified:   SubjectNotified,
		TypeDeadLetter: SubjectDeadLetter,
	}[eventType]
	return s, ok
}

// Source says how a lead entered the pipeline.
type Source string

// Sources.
const (
	SourceWebhook Source = "c2s_webhook"
	SourceMake    Source = "make"
	SourceAPI     Source = "api"
	SourceReplay  Source = "replay"
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool {
	switch s {
	case SourceWebhook, SourceMake, SourceAPI, SourceReplay:
		return true
	}
	return false
}

// Envelope wraps every event. RunID names one pass of a lead through the
// pipeline: it is the event id of the lead.received that started it, and
// every later event of that pass carries it.
type Envelope struct {
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"`
	SchemaVersion int       `json:"schema_version"`
	LeadID        string    `json:"lead_id"`
	RunID         string    `json:"run_id"`
	CorrelationID string    `json:"correlation_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	Source        Source    `json:"source"`
	ReplayID      string    `json:"replay_id,omitempty"`
	Refresh       bool      `json:"refresh,omitempty"` // replay: pay for fresh Work API data
	Notify        bool      `json:"notify,omitempty"`  // replay: post the message again
	// RunStartedAt is the occurred_at of the run's lead.received, carried
	// by every later event of the run (end-to-end latency without a look-up).
	RunStartedAt time.Time       `json:"run_started_at,omitzero"`
	Data         json.RawMessage `json:"data"`

	// encoded is Data as jsonx.Marshal wrote it here (New, NewReceived,
	// SetData): while Data is still that very slice, Marshal copies it in
	// as it is instead of validating it again.
	encoded json.RawMessage
}

// Marshal encodes e exactly as json.Marshal does. When Data was encoded by
// New or NewReceived (and so is compact, valid JSON), it is copied in as it
// is instead of being scanned and compacted a second time: enriched events
// carry 5-10 kB of Work API payload per person.
func Marshal(e Envelope) ([]byte, error) {
	data := e.Data
	if len(data) == 0 || len(data) != len(e.encoded) || &data[0] != &e.encoded[0] {
		return json.Marshal(e)
	}
	e.Data = nil
	head, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	const tail = `null}` // "data" is the last field
	if !bytes.HasSuffix(head, []byte(tail)) {
		e.Data = data
		return json.Marshal(e)
	}
	out := make([]byte, 0, len(head)-len(tail)+len(data)+1)
	out = append(out, head[:len(head)-len(tail)]...)
	out = append(out, data...)
	return append(out, '}'), nil
}

// SetData replaces the payload with data encoded by jsonx.Marshal (the
// bytes encoding/json writes; the data types use no omitzero).
func (e *Envelope) SetData(data any) error {
	raw, err := jsonx.Marshal(data)
	if err != nil {
		return err
	}
	e.Data, e.encoded = raw, raw
	return nil
}

// ShouldNotify: live runs always notify; replays only when asked.
func (e Envelope) ShouldNotify() bool { return e.Source != SourceReplay || e.Notify }

// MsgID is the deterministic Nats-Msg-Id of the event: type and event id,
// both derived from non-personal ids.
func (e Envelope) MsgID() string { return e.Type + ":" + e.EventID }

// Customer is the lead's contact data as C2S gave it. Personal data.
type Customer struct {
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
	Email string `json:"email,omitempty"`
}

// LeadReceived starts a run.
type LeadReceived struct {
	Action    string   `json:"action"` // on_create_lead, on_update_lead, trigger
	UpdatedAt string   `json:"updated_at,omitempty"`
	Customer  Customer `json:"customer"`
}

// Role says which lead identifier led to a person.
type Role string

// Roles.
const (
	RolePhone Role = "phone"
	RoleEmail Role = "email"
	RoleBoth  Role = "both"
)

// ResolvedPerson is one person a lead turned out to be.
type ResolvedPerson struct {
	CPF         string `json:"cpf"`
	Role        Role   `json:"role"`
	PhoneSource string `json:"phone_source,omitempty"` // "db" | "diretrix"
	EmailSource string `json:"email_source,omitempty"`
}

// LeadResolved lists one or two persons, the phone's first.
type LeadResolved struct {
	Phone   string           `json:"phone,omitempty"` // normalised
	Email   string           `json:"email,omitempty"` // normalised
	Persons []ResolvedPerson `json:"persons"`
}

// LeadUnresolved ends a run without a person.
type LeadUnresolved struct {
	Phone  string `json:"phone,omitempty"`
	Email  string `json:"email,omitempty"`
	Reason string `json:"reason"`
}

// EnrichedPerson carries what the notifier needs without calling anything
// paid: the fields the message prints and how the person was found.
type EnrichedPerson struct {
	CPF      string `json:"cpf"`
	Role     Role   `json:"role"`
	EntityID string `json:"entity_id"`
	Paid     bool   `json:"paid"` // a Work API call was made for this run
	// Person is what the message prints of the person (person.Summary), a
	// third of the payload's size. Payload, the whole Work API answer, is
	// what events published before the summary carried: the notifier reads
	// either, so those can still be redelivered and replayed.
	Person  json.RawMessage `json:"person,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// SkippedPerson is a CPF the Work API had no data for.
type SkippedPerson struct {
	CPF    string `json:"cpf"`
	Role   Role   `json:"role"`
	Reason string `json:"reason"`
}

// LeadEnriched follows LeadResolved once core.* is written.
type LeadEnriched struct {
	Phone   string           `json:"phone,omitempty"`
	Email   string           `json:"email,omitempty"`
	Persons []EnrichedPerson `json:"persons"`
	Skipped []SkippedPerson  `json:"skipped,omitempty"`
}

// LeadNotified ends a run.
type LeadNotified struct {
	MessageHash string `json:"message_hash,omitempty"`
	Route       string `json:"route,omitempty"`  // gateway | direct
	Status      string `json:"status"`           // sent | already_sent | skipped
	Reason      string `json:"reason,omitempty"` // why skipped
}

// DeadLetter is the payload on leads.dlq: the failed event as it was, and why.
type DeadLetter struct {
	SchemaVersion   int             `json:"schema_version"`
	OriginalSubject string          `json:"original_subject"`
	OriginalMsgID   string          `json:"original_msg_id"`
	Stage           string          `json:"stage"`
	Reason          string          `json:"reason"`
	FailedAt        time.Time       `json:"failed_at"`
	Deliveries      int             `json:"deliveries,omitempty"`
	LeadID          string          `json:"lead_id,omitempty"`
	Event           json.RawMessage `json:"event,omitempty"`      // original payload when it was JSON
	RawBase64       string          `json:"raw_base64,omitempty"` // original payload otherwise

	// TraceID is the W3C trace id of the failed delivery, when traced.
	TraceID string `json:"trace_id,omitempty"`
}

// ID derives a deterministic 32-hex id from non-personal parts.
func ID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return hex.EncodeToString(h[:16])
}

// New builds an envelope for data, continuing from parent (nil starts a run).
// The event id is derived from the parent's run and the type, so redelivering
// the parent produces the same id and JetStream drops the duplicate.
func New(eventType string, parent *Envelope, data any) (Envelope, error) {
	if parent == nil {
		return Envelope{}, errors.New("events: New needs a parent; use NewReceived to start a run")
	}
	raw, err := jsonx.Marshal(data)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{
		EventID:       ID(eventType, parent.RunID),
		Type:          eventType,
		SchemaVersion: SchemaVersion,
		LeadID:        parent.LeadID,
		RunID:         parent.RunID,
		CorrelationID: parent.CorrelationID,
		OccurredAt:    time.Now().UTC(),
		RunStartedAt:  parent.RunStart(),
		Source:        parent.Source,
		ReplayID:      parent.ReplayID,
		Refresh:       parent.Refresh,
		Notify:        parent.Notify,
		Data:          raw,
		encoded:       raw,
	}, nil
}

// RunStart is when the event's run began: its lead.received's occurred_at
// (zero when unknown, e.g. events stored before run_started_at existed).
func (e Envelope) RunStart() time.Time {
	if e.Type == TypeReceived {
		return e.OccurredAt
	}
	return e.RunStartedAt
}

// NewReceived starts a run. runKey must identify the trigger without
// personal data: (lead id, updated_at) for webhooks, a run id for triggers.
func NewReceived(leadID string, source Source, runKey string, data LeadReceived) (Envelope, error) {
	raw, err := jsonx.Marshal(data)
	if err != nil {
		return Envelope{}, err
	}
	id := ID(TypeReceived, leadID, string(source), runKey)
	return Envelope{
		EventID:       id,
		Type:          TypeReceived,
		SchemaVersion: SchemaVersion,
		LeadID:        leadID,
		RunID:         id,
		CorrelationID: id,
		OccurredAt:    time.Now().UTC(),
		Source:        source,
		Data:          raw,
		encoded:       raw,
	}, nil
}

// ErrInvalid marks an event that can never be processed.
var ErrInvalid = errors.New("invalid event")

// invalid classifies a decode problem as permanent: bad events are
// dead-lettered, never retried.
func invalid(format string, args ...any) error {
	return failure.Permanent("decode", fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
}

// Decode parses and validates an envelope and its payload into data (a
// pointer to the payload type expected for wantType). Any error wraps
// ErrInvalid: bad events are dead-lettered, never retried.
func Decode(b []byte, wantType string, data any) (Envelope, error) {
	// Raw parts of the payload (Work API JSON) point into b: b must not
	// change while the envelope or data is in use.
	var e Envelope
	if err := jsonx.UnmarshalShared(b, &e); err != nil {
		return e, invalid("not an envelope: %v", err)
	}
	var problems []string
	if e.EventID == "" {
		problems = append(problems, "event_id missing")
	}
	if e.RunID == "" {
		problems = append(problems, "run_id missing")
	}
	if !lead.ValidID(e.LeadID) {
		problems = append(problems, "lead_id missing or malformed")
	}
	if e.SchemaVersion != SchemaVersion {
		problems = append(problems, fmt.Sprintf("schema_version %d unsupported", e.SchemaVersion))
	}
	if wantType != "" && e.Type != wantType {
		problems = append(problems, fmt.Sprintf("type %q, want %q", e.Type, wantType))
	}
	if !e.Source.Valid() {
		problems = append(problems, "source unknown")
	}
	if e.Source == SourceReplay && e.ReplayID == "" {
		problems = append(problems, "replay without replay_id")
	}
	if len(problems) > 0 {
		return e, invalid("%s", strings.Join(problems, "; "))
	}
	if data != nil {
		if len(e.Data) == 0 || string(e.Data) == "null" {
			return e, invalid("data missing")
		}
		if err := jsonx.UnmarshalShared(e.Data, data); err != nil {
			return e, invalid("data: %v", err)
		}
		if v, ok := data.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return e, invalid("%v", err)
			}
		}
	}
	return e, nil
}

// Validate checks a resolution has one or two persons with roles.
func (r *LeadResolved) Validate() error {
	if len(r.Persons) == 0 || len(r.Persons) > 2 {
		return fmt.Errorf("resolved with %d persons", len(r.Persons))
	}
	for _, p := range r.Persons {
		if len(p.CPF) != 11 || p.Role == "" {
			return errors.New("resolved person without cpf or role")
		}
	}
	return nil
}

// Validate checks an enrichment carries each person's summary or payload.
func (r *LeadEnriched) Validate() error {
	if len(r.Persons) > 2 {
		return fmt.Errorf("enriched with %d persons", len(r.Persons))
	}
	for _, p := range r.Persons {
		if p.CPF == "" || (len(p.Person) == 0 && len(p.Payload) == 0) {
			return errors.New("enriched person without cpf or data")
		}
	}
	return nil
}
