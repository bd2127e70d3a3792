// Package app holds the enricher's use case: reuse before paying, pay once
// per CPF, write each person exactly as db/DB.md says.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/enrichment"
)

// Store writes the lead's persons to core.* and records the stage in the
// trace, in one transaction.
type Store interface {
	// SaveEnrichment writes persons (none when the run ends unresolved) and
	// the trace step of env, and sets each person's EntityID.
	SaveEnrichment(ctx context.Context, env events.Envelope, persons []enrichment.Result, leadID string, s Summary) error
}

// Publisher publishes the outcome.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
}

// Summary is what the trace keeps of an enrichment.
type Summary struct {
	CPFs, Entities int
	Paid           int
	Skipped        []events.SkippedPerson
	Unresolved     bool
}

// Enricher is the use case: every person of a lead through the shared
// enrichment (pkg/enrichment), then the persons and the outcome recorded in
// one transaction and published.
type Enricher struct {
	Persons   *enrichment.Persons
	Store     Store
	Publisher Publisher
	ReuseTTL  time.Duration
}

// Handle enriches every person of a lead.resolved event: each person's
// payload is reused or paid for first, then every person and the trace step
// are written together. The last person's payload, when paid for just now,
// is stored in that same transaction under its still-held claim (released
// right after the commit); the others' are stored under their claims
// before the next person, so a handler never holds two claims.
func (e *Enricher) Handle(ctx context.Context, env events.Envelope, in events.LeadResolved) error {
	out := events.LeadEnriched{Phone: in.Phone, Email: in.Email}
	sum := Summary{CPFs: len(in.Persons)}
	var found []enrichment.Result
	defer func() {
		// Whatever happened: a claim still held stores its payload (unless
		// the transaction did) and is released.
		for _, r := range found {
			if r.Claim != nil {
				_ = r.Claim.Close(ctx)
			}
		}
	}()
	for i, rp := range in.Persons {
		fetch := e.Persons.Fetch
		if i == len(in.Persons)-1 {
			fetch = e.Persons.FetchHeld
		}
		r, err := fetch(ctx, rp.CPF, e.reuse(env, rp))
		if err != nil {
			return err
		}
		if r.Skipped != "" {
			// The Work API has nothing usable for this CPF: skip the
			// person, keep the others.
			sum.Skipped = append(sum.Skipped, events.SkippedPerson{CPF: rp.CPF, Role: rp.Role, Reason: r.Skipped})
			continue
		}
		if r.Paid {
			sum.Paid++
		}
		found = append(found, r)
		summary, err := r.Person.Summary()
		if err != nil {
			return failure.Permanent("enricher.event", err)
		}
		out.Persons = append(out.Persons, events.EnrichedPerson{CPF: rp.CPF, Role: rp.Role, Paid: r.Paid, Person: summary})
	}
	sum.Entities = len(found)
	out.Skipped = sum.Skipped
	var next events.Envelope
	var err error
	if len(found) == 0 {
		sum.Unresolved = true
		next, err = events.New(events.TypeUnresolved, &env, events.LeadUnresolved{Phone: in.Phone, Email: in.Email,
			Reason: fmt.Sprintf("the Work API had no data for the %d CPF(s) found", len(in.Persons))})
	} else {
		// The data waits for the entity ids; the trace needs only the ids.
		next, err = events.New(events.TypeEnriched, &env, nil)
	}
	if err != nil {
		return failure.Permanent("enricher.event", err)
	}
	err = e.Store.SaveEnrichment(ctx, next, found, env.LeadID, sum)
	for _, r := range found {
		if r.Claim != nil {
			// Before the publish: the claim's connection goes back now.
			if cerr := r.Claim.Close(ctx); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return err
	}
	if len(found) > 0 {
		for i := range found {
			out.Persons[i].EntityID = found[i].EntityID
		}
		if err := next.SetData(out); err != nil {
			return failure.Permanent("enricher.event", err)
		}
	}
	return e.Publisher.Publish(ctx, next)
}

// reuse: a replay re-derives from stored payloads at no cost unless asked
// to refresh; a refresh is done once a payload was fetched after the event
// that asked for it (so its redelivery does not pay again); live runs reuse
// payloads younger than the TTL.
//
// A live run's CPF that the resolver found only through Diretrix is new to
// the product's records, so its payload is most likely not stored yet: the
// payloads skip their look-up and claim at once (Reuse.New).
func (e *Enricher) reuse(env events.Envelope, p events.ResolvedPerson) enrichment.Reuse {
	switch {
	case env.Source == events.SourceReplay && env.Refresh:
		return enrichment.Reuse{FetchedAfter: env.OccurredAt}
	case env.Source == events.SourceReplay:
		return enrichment.Reuse{Always: true}
	}
	fromDB := p.PhoneSource == enrichment.SourceDB || p.EmailSource == enrichment.SourceDB
	fromDiretrix := p.PhoneSource == enrichment.SourceDiretrix || p.EmailSource == enrichment.SourceDiretrix
	return enrichment.Reuse{MaxAge: e.ReuseTTL, New: fromDiretrix && !fromDB}
}
