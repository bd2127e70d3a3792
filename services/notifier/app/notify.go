// Package app holds the notifier's use case: format the message and post it
// exactly once, even across crashes, although C2S does not deduplicate.
package app

import (
	"context"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/domain/message"
	"github.com/leadflow/leadflow/pkg/enrichment"
)

// CRM is the C2S port: gateway first when configured, direct as fallback.
type CRM interface {
	GetLead(ctx context.Context, id string) (*c2s.Lead, error)
	PostMessage(ctx context.Context, leadID, body string) (route string, err error)
}

// Ledger is the notifications ledger. Post runs inside an exclusive,
// per-lead section; it reports what the ledger already knew of the key.
type Ledger interface {
	// Deliver serialises deliveries per lead. attempt is called with the
	// ledger's state for key; it returns the route used.
	Deliver(ctx context.Context, key Key, attempt func(ctx context.Context, state State) (Delivery, error)) (Delivery, error)
}

// Key identifies one message on one lead. ReplayKey is empty for live runs,
// so a repeat of the same text on a lead is never posted twice; a --notify
// replay has a key of its own.
type Key struct {
	LeadID, MessageHash, ReplayKey, RunID string
}

// State is what the ledger knew before this attempt.
type State struct {
	Sent bool
	// Uncertain: an earlier attempt began and did not record its end (a
	// crash or timeout after sending), so the post may already be in C2S.
	Uncertain bool
}

// Delivery is the result of Deliver.
type Delivery struct {
	Status string // sent | already_sent
	Route  string // gateway | direct | "" when nothing was posted
}

// Store records the stage in the trace.
type Store interface {
	SaveNotification(ctx context.Context, env events.Envelope, n events.LeadNotified) error
}

// Publisher publishes lead.notified.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
}

// Notifier is the use case.
type Notifier struct {
	CRM        CRM
	Ledger     Ledger
	Store      Store
	Publisher  Publisher
	Multiplier decimal.Decimal
	// OnNotified, when set, is told of every lead.notified published.
	OnNotified func(next events.Envelope, out events.LeadNotified)
}

// Enriched posts the message of a lead.enriched event.
func (n *Notifier) Enriched(ctx context.Context, env events.Envelope, in events.LeadEnriched) error {
	if !env.ShouldNotify() {
		return n.finish(ctx, env, events.LeadNotified{Status: "skipped", Reason: "replay without --notify"})
	}
	body, err := enrichment.Compose(in, n.Multiplier)
	if err != nil {
		return err
	}
	return n.post(ctx, env, body)
}

// Unresolved posts a short notice when NOTIFY_UNRESOLVED=true.
func (n *Notifier) Unresolved(ctx context.Context, env events.Envelope, in events.LeadUnresolved) error {
	if !env.ShouldNotify() {
		return n.finish(ctx, env, events.LeadNotified{Status: "skipped", Reason: "replay without --notify"})
	}
	return n.post(ctx, env, message.FormatUnresolved(in.Reason))
}

func (n *Notifier) post(ctx context.Context, env events.Envelope, body string) error {
	key := Key{LeadID: env.LeadID, MessageHash: message.Hash(body), RunID: env.RunID}
	if env.Source == events.SourceReplay {
		key.ReplayKey = env.ReplayID
	}
	d, err := n.Ledger.Deliver(ctx, key, func(ctx context.Context, st State) (Delivery, error) {
		if st.Sent {
			return Delivery{Status: "already_sent"}, nil
		}
		if st.Uncertain {
			// C2S does not deduplicate: look before posting again.
			lead, err := n.CRM.GetLead(ctx, env.LeadID)
			if err != nil && !failure.Is(err, failure.KindNotFound) {
				return Delivery{}, err
			}
			if lead != nil && contains(lead.Messages, body) {
				return Delivery{Status: "already_sent"}, nil
			}
		}
		route, err := n.CRM.PostMessage(ctx, env.LeadID, body)
		if err != nil {
			return Delivery{}, err
		}
		return Delivery{Status: "sent", Route: route}, nil
	})
	if err != nil {
		return err
	}
	return n.finish(ctx, env, events.LeadNotified{MessageHash: key.MessageHash, Route: d.Route, Status: d.Status})
}

func (n *Notifier) finish(ctx context.Context, env events.Envelope, out events.LeadNotified) error {
	next, err := events.New(events.TypeNotified, &env, out)
	if err != nil {
		return failure.Permanent("notifier.event", err)
	}
	if err := n.Store.SaveNotification(ctx, next, out); err != nil {
		return err
	}
	if err := n.Publisher.Publish(ctx, next); err != nil {
		return err
	}
	if n.OnNotified != nil {
		n.OnNotified(next, out)
	}
	return nil
}

// contains compares modulo trailing whitespace: CRMs may trim what they store.
func contains(messages []string, body string) bool {
	want := strings.TrimSpace(body)
	for _, m := range messages {
		if strings.TrimSpace(m) == want {
			return true
		}
	}
	return false
}
