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
// payload is reused or paid for first (each paid one stored under its claim
// before the claim ends), then every person and the trace step are written
// together.
func (e *Enricher) Handle(ctx context.Context, env events.Envelope, in events.LeadResolved) error {
	out := events.LeadEnriched{Phone: in.Phone, Email: in.Email}
	sum := Summary{CPFs: len(in.Persons)}
	var found []enrichment.Result
	for _, rp := range in.Persons {
		r, err := e.Persons.Fetch(ctx, rp.CPF, e.reuse(env, rp))
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
		out.Persons = append(out.Persons, events.EnrichedPerson{CPF: rp.CPF, Role: rp.Role, Paid: r.Paid, Payload: r.Raw})
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
	if err := e.Store.SaveEnrichment(ctx, next, found, env.LeadID, sum); err != nil {
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
