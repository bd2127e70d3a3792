// Package app holds the notifier's use case: format the message and post it
// exactly once, even across crashes and lost replies, although C2S does not
// deduplicate.
package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/domain/message"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/store/ledger"
)

// CRM is the C2S port: gateway first when configured, direct as fallback.
// PostMessage returns a failure.KindUncertain error (a *c2s.UncertainError
// carrying the route) when the post may have reached C2S and its answer was
// lost; it never posts again by itself.
type CRM interface {
	GetLead(ctx context.Context, id string) (*c2s.Lead, error)
	PostMessage(ctx context.Context, leadID, body string) (route string, err error)
}

// Ledger is the notifications ledger (pkg/store/ledger). Open takes the
// lead's exclusive section and creates or reads the delivery of key. A
// delivery it creates is already recorded as posting (committed before
// Open returns): Fresh reports it, and its first post needs no Posting.
type Ledger interface {
	Open(ctx context.Context, key ledger.Key, runID, messageHash string) (Delivery, error)
}

// Delivery is one exclusive section on a delivery.
type Delivery interface {
	// Entry is what the ledger knew when the section began (updated by
	// Posting).
	Entry() ledger.Entry
	// Fresh reports that Open created the delivery, recorded as posting.
	Fresh() bool
	// Posting records, committed before the post, that a post starts.
	Posting(ctx context.Context, messageHash string) error
	// Uncertain records the route of a post whose outcome is unknown.
	Uncertain(ctx context.Context, route string) error
	// Finish records the end (ledger status, route, reason) and, when
	// step is given, the trace step of the lead.notified event, in one
	// transaction, and releases the lead. recorded reports whether the
	// step was written (if it could not be, the end is still recorded).
	Finish(ctx context.Context, status, route, reason string, step *Notified) (recorded bool, err error)
	// Close releases the lead if Finish did not.
	Close()
}

// Notified is a lead.notified event about to be published and its outcome,
// for the trace.
type Notified struct {
	Env events.Envelope
	Out events.LeadNotified
}

// Uncertain is what the trace records of an uncertain delivery.
type Uncertain struct {
	Route       string
	MessageHash string
	Reason      string
}

// Store records the stage in the trace.
type Store interface {
	SaveNotification(ctx context.Context, env events.Envelope, n events.LeadNotified) error
	SaveUncertain(ctx context.Context, env events.Envelope, u Uncertain) error
}

// Publisher publishes lead.notified.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
}

// lead.notified statuses.
const (
	StatusSent        = "sent"
	StatusAlreadySent = "already_sent"
	StatusSkipped     = "skipped"
)

// ErrUncertainDelivery is the reason of an uncertain delivery's dead letter:
// a post may be on the lead and nobody can check (c2s/API.md).
var ErrUncertainDelivery = errors.New("uncertain delivery: the message may already be on the lead, " +
	"which lists no messages to check; it is not posted again. " +
	"Confirm it (leadflowctl uncertain confirm) or post it once more (leadflowctl uncertain repost)")

// errNotOnLeadYet: an uncertain post is not among the lead's messages (yet).
var errNotOnLeadYet = errors.New("an uncertain post is not among the lead's messages yet; the lead is read again before posting")

// RecheckAfter keeps a re-check of an uncertain post out of the in-process
// retries: the redelivery (after the nak delay) reads the lead again.
const RecheckAfter = 5 * time.Second

// Notifier is the use case.
type Notifier struct {
	CRM        CRM
	Ledger     Ledger
	Store      Store
	Publisher  Publisher
	Multiplier decimal.Decimal
	// Slot, when set, takes the post's slot of the C2S token's shared rate
	// budget (httpx.Reserve) before the lead's exclusive section opens: a
	// delivery waiting for its turn then holds no connection, and the post
	// spends the slot it carries in its context. A wait past the try's
	// deadline is a failure.KindRateLimited error: the router waits it out
	// on the same delivery.
	Slot func(ctx context.Context) (context.Context, error)
	// OnUncertain is told when a delivery becomes uncertain (metrics).
	OnUncertain func(route string)
	// OnNotified, when set, is told of every lead.notified published.
	OnNotified func(next events.Envelope, out events.LeadNotified)
}

// Enriched posts the message of a lead.enriched event.
func (n *Notifier) Enriched(ctx context.Context, env events.Envelope, in events.LeadEnriched) error {
	if !env.ShouldNotify() {
		return n.finish(ctx, env, events.LeadNotified{Status: StatusSkipped, Reason: "replay without --notify"})
	}
	body, err := enrichment.Compose(in, n.Multiplier)
	if err != nil {
		return err
	}
	return n.post(ctx, env, ledger.StageEnriched, body)
}

// Unresolved posts a short notice when NOTIFY_UNRESOLVED=true.
func (n *Notifier) Unresolved(ctx context.Context, env events.Envelope, in events.LeadUnresolved) error {
	if !env.ShouldNotify() {
		return n.finish(ctx, env, events.LeadNotified{Status: StatusSkipped, Reason: "replay without --notify"})
	}
	return n.post(ctx, env, ledger.StageUnresolved, message.FormatUnresolved(in.Reason))
}

// RunKey is the ledger's run key of an event: the replay id of a --notify
// replay (one message per lead and replay), the run id otherwise.
func RunKey(env events.Envelope) string {
	if env.Source == events.SourceReplay && env.ReplayID != "" {
		return env.ReplayID
	}
	return env.RunID
}

// TextHash is the ledger's hash of a message: SHA-256 of the text without
// surrounding whitespace (C2S may store it trimmed).
func TextHash(body string) string { return message.Hash(strings.TrimSpace(body)) }

// post delivers body through the ledger. The delivery is keyed by the event
// (lead, run key, stage), not by the text, so a formatter or multiplier
// change between attempts never makes a second delivery.
func (n *Notifier) post(ctx context.Context, env events.Envelope, stage, body string) error {
	hash := TextHash(body)
	if n.Slot != nil {
		var err error
		if ctx, err = n.Slot(ctx); err != nil {
			return err
		}
	}
	d, err := n.Ledger.Open(ctx, ledger.Key{LeadID: env.LeadID, RunKey: RunKey(env), Stage: stage}, env.RunID, hash)
	if err != nil {
		return err
	}
	step, recorded, err := n.deliver(ctx, d, env, body, hash)
	// Release the lead before the trace: the pool may be smaller than the
	// number of handlers.
	d.Close()
	if err != nil {
		return err
	}
	if !recorded {
		if err := n.Store.SaveNotification(ctx, step.Env, step.Out); err != nil {
			return err
		}
	}
	return n.Publisher.Publish(ctx, step.Env)
}

// deliver decides from the ledger, inside the lead's exclusive section:
//   - a delivery Open just created (recorded as posting): post;
//   - sent: already_sent, nothing posted;
//   - posting (an earlier attempt began and did not record its end) or
//     uncertain: read the lead first (check);
//   - repost (an operator's request): post without checking;
//   - pending: post.
//
// A post is recorded as started (committed) before it is sent. The
// lead.notified step it returns is already in the trace when recorded is
// true (written with the ledger's end).
func (n *Notifier) deliver(ctx context.Context, d Delivery, env events.Envelope, body, hash string) (*Notified, bool, error) {
	e := d.Entry()
	reason := ""
	if !d.Fresh() {
		switch e.Status {
		case ledger.StatusSent:
			step, err := notified(env, events.LeadNotified{Status: StatusAlreadySent, Route: e.Route, MessageHash: e.MessageHash, Reason: "recorded as sent"})
			return step, false, err
		case ledger.StatusPosting, ledger.StatusUncertain:
			step, recorded, done, err := n.check(ctx, d, env, e, hash)
			if done || err != nil {
				return step, recorded, err
			}
			reason = "not on the lead after an earlier attempt"
		case ledger.StatusRepost:
			reason = "posted once more by an operator"
		}
		if err := d.Posting(ctx, hash); err != nil {
			return nil, false, err
		}
	}
	route, err := n.CRM.PostMessage(ctx, env.LeadID, body)
	switch {
	case err == nil:
		// If this record fails, the entry stays posting: the redelivery
		// reads the lead, finds the message and posts nothing.
		return n.end(ctx, d, env, ledger.StatusSent, route, reason,
			events.LeadNotified{Status: StatusSent, Route: route, MessageHash: hash, Reason: reason})
	case failure.Is(err, failure.KindUncertain):
		// The post may be on the lead: before any second post, by either
		// route, read the lead.
		if r, ok := c2s.UncertainRoute(err); ok {
			route = r
		}
		if uerr := d.Uncertain(ctx, route); uerr != nil {
			return nil, false, uerr
		}
		e = d.Entry()
		step, recorded, done, cerr := n.check(ctx, d, env, e, hash)
		if done || cerr != nil {
			return step, recorded, cerr
		}
		// The lead lists messages and this one is not among them: the
		// gateway may still be forwarding it. The redelivery reads the
		// lead again and posts only if it is still missing.
		return nil, false, &failure.Error{Kind: failure.KindUncertain, Op: "notifier.deliver",
			RetryAfter: RecheckAfter, Err: fmt.Errorf("%w: %w", errNotOnLeadYet, err)}
	default:
		// The post surely did not happen (refused, 429, 4xx): the next
		// attempt posts without checking. Should this record fail, the
		// entry stays posting and the next attempt checks first.
		_, _ = d.Finish(ctx, ledger.StatusPending, "", "", nil)
		return nil, false, err
	}
}

// end records the delivery's end and its lead.notified trace step together.
func (n *Notifier) end(ctx context.Context, d Delivery, env events.Envelope, status, route, reason string, out events.LeadNotified) (*Notified, bool, error) {
	step, err := notified(env, out)
	if err != nil {
		return nil, false, err
	}
	recorded, err := d.Finish(ctx, status, route, reason, step)
	if err != nil {
		return nil, false, err
	}
	return step, recorded, nil
}

// check reads the lead for an earlier post (its text hash is in the entry)
// or this one. done reports that the delivery ended: found (already_sent) or
// uncertain (a permanent error: nobody can check, so nothing is posted).
// Not done and no error: the lead lists messages without it, so posting is
// safe. A lead that cannot be read now is a nak: never post blind.
func (n *Notifier) check(ctx context.Context, d Delivery, env events.Envelope, e ledger.Entry, hash string) (step *Notified, recorded, done bool, err error) {
	lead, err := n.CRM.GetLead(ctx, env.LeadID)
	if err != nil {
		return nil, false, false, fmt.Errorf("notifier: an earlier post may be on the lead, which cannot be read now; not posting blind: %w", err)
	}
	if onLead(lead, e.MessageHash, hash) {
		const why = "found on the lead"
		step, recorded, err := n.end(ctx, d, env, ledger.StatusSent, e.Route, why,
			events.LeadNotified{Status: StatusAlreadySent, Route: e.Route, MessageHash: e.MessageHash, Reason: why})
		return step, recorded, true, err
	}
	if lead.HasMessages {
		return nil, false, false, nil
	}
	if _, err := d.Finish(ctx, ledger.StatusUncertain, e.Route, ErrUncertainDelivery.Error(), nil); err != nil {
		return nil, false, false, err
	}
	if e.Status != ledger.StatusUncertain && n.OnUncertain != nil {
		n.OnUncertain(e.Route)
	}
	if err := n.Store.SaveUncertain(ctx, env, Uncertain{Route: e.Route, MessageHash: e.MessageHash, Reason: ErrUncertainDelivery.Error()}); err != nil {
		return nil, false, false, err
	}
	// Permanent: acked and dead-lettered with this reason, never retried.
	return nil, false, true, failure.Permanent("notifier.deliver", ErrUncertainDelivery)
}

// notified builds the lead.notified event of env with out.
func notified(env events.Envelope, out events.LeadNotified) (*Notified, error) {
	next, err := events.New(events.TypeNotified, &env, out)
	if err != nil {
		return nil, failure.Permanent("notifier.event", err)
	}
	return &Notified{Env: next, Out: out}, nil
}

func (n *Notifier) finish(ctx context.Context, env events.Envelope, out events.LeadNotified) error {
	step, err := notified(env, out)
	if err != nil {
		return err
	}
	if err := n.Store.SaveNotification(ctx, step.Env, step.Out); err != nil {
		return err
	}
	if err := n.Publisher.Publish(ctx, step.Env); err != nil {
		return err
	}
	if n.OnNotified != nil {
		n.OnNotified(step.Env, step.Out)
	}
	return nil
}

// onLead reports whether one of the lead's messages has one of the hashes
// (compared as TextHash: C2S may trim).
func onLead(l *c2s.Lead, hashes ...string) bool {
	for _, m := range l.Messages {
		h := TextHash(m)
		for _, want := range hashes {
			if want != "" && h == want {
				return true
			}
		}
	}
	return false
}
