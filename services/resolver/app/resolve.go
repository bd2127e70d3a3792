// Package app holds the resolver's use case: the rules of RESOLUTION.md.
package app

import (
	"context"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/enrichment"
)

// Leads fetches a lead from C2S when the event lacks contact data.
type Leads interface {
	GetLead(ctx context.Context, id string) (*c2s.Lead, error)
}

// Store durably records a resolution (identities learnt, the lead's
// contacts, the trace) before it is published.
type Store interface {
	SaveResolution(ctx context.Context, env events.Envelope, r Resolution) error
	// DecidedResolution is the outcome already published for the run.
	DecidedResolution(ctx context.Context, runID string) (events.Envelope, bool, error)
}

// Publisher publishes the outcome.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
}

// Resolution is the identity resolution's answer (pkg/enrichment).
type Resolution = enrichment.Resolution

// Resolver is the use case.
type Resolver struct {
	Identity  *enrichment.Identity
	Leads     Leads
	Store     Store
	Publisher Publisher
}

// Handle resolves one lead.received event end to end.
func (r *Resolver) Handle(ctx context.Context, env events.Envelope, in events.LeadReceived) error {
	if messaging.Redelivered(ctx) {
		// A run ends in one outcome: if an earlier delivery decided, publish
		// that decision again, even if the upstreams would now answer
		// otherwise.
		decided, ok, err := r.Store.DecidedResolution(ctx, env.RunID)
		if err != nil {
			return err
		}
		if ok {
			return r.Publisher.Publish(ctx, decided)
		}
	}
	customer, err := r.customer(ctx, env.LeadID, in.Customer)
	if err != nil {
		return err
	}
	res, err := r.Identity.Resolve(ctx, customer)
	if err != nil {
		return err
	}
	var out events.Envelope
	if len(res.Persons) == 0 {
		out, err = events.New(events.TypeUnresolved, &env, events.LeadUnresolved{Phone: res.Phone.Value, Email: res.Email.Value, Reason: res.Reason})
	} else {
		out, err = events.New(events.TypeResolved, &env, events.LeadResolved{Phone: res.Phone.Value, Email: res.Email.Value, Persons: res.Persons})
	}
	if err != nil {
		return failure.Permanent("resolver.event", err)
	}
	if err := r.Store.SaveResolution(ctx, out, res); err != nil {
		return err
	}
	return r.Publisher.Publish(ctx, out)
}

// customer completes the event's contact data from C2S when the phone or the
// email is missing or implausible.
func (r *Resolver) customer(ctx context.Context, leadID string, c events.Customer) (events.Customer, error) {
	phoneOK := brdata.PlausiblePhone(brdata.NormalizePhone(c.Phone))
	emailOK := brdata.PlausibleEmail(brdata.NormalizeEmail(c.Email))
	if phoneOK && emailOK {
		return c, nil
	}
	lead, err := r.Leads.GetLead(ctx, leadID)
	if failure.Is(err, failure.KindNotFound) {
		return c, nil // resolve with what the event had
	}
	if err != nil {
		return c, err
	}
	if !phoneOK {
		for _, p := range []string{lead.Customer.Phone, lead.Customer.Phone2} {
			if brdata.PlausiblePhone(brdata.NormalizePhone(p)) {
				c.Phone = p
				break
			}
		}
	}
	if !emailOK && lead.Customer.Email != "" {
		c.Email = lead.Customer.Email
	}
	if c.Name == "" {
		c.Name = lead.Customer.Name
	}
	return c, nil
}
