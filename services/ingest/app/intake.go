// Package app holds ingest's use cases: turning webhooks and triggers into
// lead.received events exactly once, and answering queries.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// Statuses answered to callers.
const (
	StatusQueued    = "queued"
	StatusDuplicate = "duplicate"
	StatusIgnored   = "ignored"
	StatusRecorded  = "recorded"
)

// Receipt is one webhook event as stored.
type Receipt struct {
	LeadID, UpdatedKey, Action, Status, EventID string
	Payload                                     json.RawMessage
}

// Receipts is the webhook side of the store. Each call is one statement:
// nothing is held open across a publish.
type Receipts interface {
	ReceiptExists(ctx context.Context, leadID, updatedKey string) (bool, error)
	// LastContacts is what the resolver last resolved for the lead.
	LastContacts(ctx context.Context, leadID string) (phone, email string, found bool, err error)
	// AddReceipt stores a receipt and, when run is set, starts that run; it
	// returns false when (lead, updated_key) exists. Starting a run twice is
	// a no-op, so a duplicate sent along does no harm.
	AddReceipt(ctx context.Context, r Receipt, run *events.Envelope) (bool, error)
}

// Tx is the unit of work a trigger needs: the check for a run in flight and
// the new run are serialised per lead.
type Tx interface {
	// LockLead serialises triggers of one lead until the unit ends.
	LockLead(ctx context.Context, leadID string) error
	LatestLiveRun(ctx context.Context, leadID string, since time.Time) (*runs.Run, error)
	StartRun(ctx context.Context, env events.Envelope) error
}

// UnitOfWork runs fn in one transaction.
type UnitOfWork interface {
	Do(ctx context.Context, fn func(tx Tx) error) error
}

// Publisher publishes lead.received.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
}

// Runs reads runs.
type Runs interface {
	GetRun(ctx context.Context, runID string) (*runs.Run, error)
}

// Intake is the use case.
type Intake struct {
	Receipts    Receipts
	UoW         UnitOfWork
	Publisher   Publisher
	Runs        Runs
	MakeWindow  time.Duration
	PollEvery   time.Duration
	NewRunKey   func() string
	Now         func() time.Time
	OnPublished func(source events.Source) // metrics hook
	OnDuplicate func(source events.Source)
}

// WebhookResult is the answer for one webhook event.
type WebhookResult struct {
	LeadID  string `json:"lead_id"`
	Action  string `json:"action"`
	Status  string `json:"status"`
	EventID string `json:"event_id,omitempty"`
}

// Webhook handles one C2S webhook event: dedupe on (lead id, updated_at),
// decide by action, publish when there is something to enrich.
//
// The event is published before its receipt is written. A failed publish
// therefore leaves nothing behind and the C2S retry gets a second chance; a
// receipt lost after the publish only means a retry is published again, and
// JetStream drops it (same Nats-Msg-Id) or, past the dedupe window, every
// stage takes it idempotently.
func (in *Intake) Webhook(ctx context.Context, ev c2s.WebhookEvent, raw json.RawMessage) (WebhookResult, error) {
	ev.Action = cleanText(ev.Action)
	res := WebhookResult{LeadID: ev.LeadID, Action: ev.Action}
	key := UpdatedKey(ev)
	receipt := Receipt{LeadID: ev.LeadID, UpdatedKey: key, Action: ev.Action, Status: StatusRecorded, Payload: store.JSONB(raw)}
	enrich := false
	switch ev.Action {
	case c2s.ActionCreate:
		// No look-up first: a repeat is published again with the same
		// Nats-Msg-Id (JetStream keeps one) and answered "duplicate" when its
		// receipt conflicts. That saves a round trip on every new lead.
		enrich = true
	case c2s.ActionUpdate:
		seen, err := in.Receipts.ReceiptExists(ctx, ev.LeadID, key)
		if err != nil {
			return res, err
		}
		if seen {
			res.Status = StatusDuplicate
			in.count(res.Status, events.SourceWebhook)
			return res, nil
		}
		phone, email, found, err := in.Receipts.LastContacts(ctx, ev.LeadID)
		if err != nil {
			return res, err
		}
		enrich = !found || phone != normPhone(ev.Customer.Phone) || email != brdata.NormalizeEmail(ev.Customer.Email)
		if !enrich {
			receipt.Status = StatusIgnored
		}
	}
	var env events.Envelope
	var err error
	if enrich {
		env, err = events.NewReceived(ev.LeadID, events.SourceWebhook, key, events.LeadReceived{
			Action:    ev.Action,
			UpdatedAt: ev.UpdatedAtRaw,
			Customer:  events.Customer{Name: ev.Customer.Name, Phone: ev.Customer.Phone, Email: ev.Customer.Email},
		})
		if err != nil {
			return res, failure.Permanent("ingest.event", err)
		}
		if err := in.Publisher.Publish(ctx, env); err != nil {
			return res, err
		}
		receipt.Status, receipt.EventID = StatusQueued, env.EventID
	}
	var run *events.Envelope
	if enrich {
		run = &env
	}
	fresh, err := in.Receipts.AddReceipt(ctx, receipt, run)
	if err != nil {
		return res, err
	}
	switch {
	case !fresh:
		// A concurrent delivery of the same event won; its publish and ours
		// carried the same Nats-Msg-Id, so JetStream kept one.
		res.Status = StatusDuplicate
	case enrich:
		res.Status, res.EventID = StatusQueued, env.EventID
	default:
		res.Status = receipt.Status
	}
	in.count(res.Status, events.SourceWebhook)
	return res, nil
}

// normPhone compares phones as the resolver stores them.
func normPhone(p string) string { return brdata.NormalizePhone(p) }

// UpdatedKey is the event's identity with C2S: updated_at normalised to UTC
// when it parses (the same instant in two spellings is one event), the raw
// text otherwise, and "-" when absent.
func UpdatedKey(ev c2s.WebhookEvent) string {
	if !ev.UpdatedAt.IsZero() {
		return ev.UpdatedAt.UTC().Format(time.RFC3339Nano)
	}
	if ev.UpdatedAtRaw != "" {
		return cleanText(ev.UpdatedAtRaw)
	}
	return "-"
}

// maxKeyText bounds the text ingest stores as a key column; longer values
// are kept as their hash (still one key per distinct value).
const maxKeyText = 128

// cleanText makes a sender's free text storable as a Postgres text key: valid
// UTF-8 without NUL, and bounded (a longer or altered text is replaced by its
// hash, so a real lead is never refused over what a field happens to contain).
func cleanText(s string) string {
	c := store.Text(s)
	if c != s || len(c) > maxKeyText {
		h := sha256.Sum256([]byte(s))
		return "h:" + hex.EncodeToString(h[:16])
	}
	return c
}

// TriggerResult is the answer to a trigger.
type TriggerResult struct {
	LeadID string
	Status string // queued | duplicate
	RunID  string
}

// Trigger starts a run for a lead (Make.com, the API) unless one is in flight
// or finished within the Make dedupe window: retries from Make must never
// produce a second message.
func (in *Intake) Trigger(ctx context.Context, leadID string, source events.Source) (TriggerResult, error) {
	res := TriggerResult{LeadID: leadID}
	if !lead.ValidID(leadID) {
		return res, failure.Permanent("ingest.trigger", errBadLeadID)
	}
	err := in.UoW.Do(ctx, func(tx Tx) error {
		if err := tx.LockLead(ctx, leadID); err != nil {
			return err
		}
		run, err := tx.LatestLiveRun(ctx, leadID, in.now().Add(-in.MakeWindow))
		if err != nil {
			return err
		}
		if run != nil {
			res.Status, res.RunID = StatusDuplicate, run.RunID
			return nil
		}
		env, err := events.NewReceived(leadID, source, in.runKey(), events.LeadReceived{Action: "trigger"})
		if err != nil {
			return failure.Permanent("ingest.event", err)
		}
		if err := tx.StartRun(ctx, env); err != nil {
			return err
		}
		if err := in.Publisher.Publish(ctx, env); err != nil {
			return err
		}
		res.Status, res.RunID = StatusQueued, env.RunID
		return nil
	})
	if err != nil {
		return res, err
	}
	in.count(res.Status, source)
	return res, nil
}

// Wait polls the run until it ends or ctx is done; it returns the last state.
func (in *Intake) Wait(ctx context.Context, runID string) (*runs.Run, error) {
	every := in.PollEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last *runs.Run
	for {
		run, err := in.Runs.GetRun(ctx, runID)
		if ctx.Err() != nil {
			// The wait ran out while reading: that is "still processing",
			// not a failure to read the run.
			return last, nil
		}
		if err != nil && !failure.Is(err, failure.KindNotFound) {
			return nil, err
		}
		if run != nil {
			last = run
		}
		if last != nil && runs.Final(last.Status) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, nil
		case <-t.C:
		}
	}
}

func (in *Intake) count(status string, source events.Source) {
	switch status {
	case StatusQueued:
		if in.OnPublished != nil {
			in.OnPublished(source)
		}
	case StatusDuplicate:
		if in.OnDuplicate != nil {
			in.OnDuplicate(source)
		}
	}
}

func (in *Intake) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Intake) runKey() string {
	if in.NewRunKey != nil {
		return in.NewRunKey()
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type constError string

func (e constError) Error() string { return string(e) }

const errBadLeadID = constError("lead id is not a valid C2S id")
