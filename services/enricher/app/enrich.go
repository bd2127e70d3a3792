// Package app holds the enricher's use case: reuse before paying, pay once
// per CPF, write each person exactly as db/DB.md says.
package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/logging"
)

// PaidAPI is the Work API: every answered call costs credits.
type PaidAPI interface {
	PersonByCPF(ctx context.Context, cpf string) (json.RawMessage, error)
}

// Payloads stores raw Work API payloads and serialises paying per CPF across
// processes: Fetch runs pay only when no usable payload is stored, while
// holding a per-CPF claim, and stores what it paid for.
type Payloads interface {
	Fetch(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (raw json.RawMessage, paid bool, err error)
}

// Reuse says which stored payload may stand in for a call.
type Reuse struct {
	Always bool          // replays: any stored payload, however old
	MaxAge time.Duration // otherwise: younger than this (0 = always pay)
}

// Writer writes one person to core.*.
type Writer interface {
	WritePerson(ctx context.Context, p *person.Person, leadID string) (entityID string, err error)
}

// Store records the stage in the trace.
type Store interface {
	SaveEnrichment(ctx context.Context, env events.Envelope, s Summary) error
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

// Metrics are the alerts operators watch.
type Metrics struct {
	PaidCalls        prometheus.Counter
	Reused           prometheus.Counter
	TokenInvalid     prometheus.Counter
	CreditsExhausted prometheus.Counter
}

// NewMetrics registers the enricher's counters on reg (nil = unregistered).
func NewMetrics(reg prometheus.Registerer) Metrics {
	m := Metrics{
		PaidCalls:        prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_paid_calls_total", Help: "Work API calls that returned a person (credits spent)."}),
		Reused:           prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_reused_total", Help: "Persons served from stored payloads at no cost."}),
		TokenInvalid:     prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_token_invalid_total", Help: "ALERT: Work API rejected the token."}),
		CreditsExhausted: prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_credits_exhausted_total", Help: "ALERT: Work API is out of credits."}),
	}
	if reg != nil {
		reg.MustRegister(m.PaidCalls, m.Reused, m.TokenInvalid, m.CreditsExhausted)
	}
	return m
}

// Enricher is the use case.
type Enricher struct {
	API       PaidAPI
	Payloads  Payloads
	Writer    Writer
	Store     Store
	Publisher Publisher
	ReuseTTL  time.Duration
	Metrics   Metrics
	Log       zerolog.Logger

	flight singleflight.Group
}

// Handle enriches every person of a lead.resolved event.
func (e *Enricher) Handle(ctx context.Context, env events.Envelope, in events.LeadResolved) error {
	out := events.LeadEnriched{Phone: in.Phone, Email: in.Email}
	sum := Summary{CPFs: len(in.Persons)}
	for _, rp := range in.Persons {
		raw, paid, err := e.payload(ctx, rp.CPF, e.reuse(env))
		if err != nil {
			if failure.Is(err, failure.KindPermanent) || failure.Is(err, failure.KindNotFound) {
				// The Work API has nothing usable for this CPF: skip the
				// person, keep the others.
				sum.Skipped = append(sum.Skipped, events.SkippedPerson{CPF: rp.CPF, Role: rp.Role, Reason: err.Error()})
				continue
			}
			return e.alert(ctx, err)
		}
		p, err := person.Parse(raw)
		if err != nil || !p.HasCPF() {
			sum.Skipped = append(sum.Skipped, events.SkippedPerson{CPF: rp.CPF, Role: rp.Role, Reason: "stored payload is not a person"})
			continue
		}
		entityID, err := e.Writer.WritePerson(ctx, p, env.LeadID)
		if err != nil {
			return err
		}
		if paid {
			sum.Paid++
		}
		sum.Entities++
		out.Persons = append(out.Persons, events.EnrichedPerson{CPF: rp.CPF, Role: rp.Role, EntityID: entityID, Paid: paid, Payload: raw})
	}
	out.Skipped = sum.Skipped
	var next events.Envelope
	var err error
	if len(out.Persons) == 0 {
		sum.Unresolved = true
		next, err = events.New(events.TypeUnresolved, &env, events.LeadUnresolved{Phone: in.Phone, Email: in.Email,
			Reason: fmt.Sprintf("the Work API had no data for the %d CPF(s) found", len(in.Persons))})
	} else {
		next, err = events.New(events.TypeEnriched, &env, out)
	}
	if err != nil {
		return failure.Permanent("enricher.event", err)
	}
	if err := e.Store.SaveEnrichment(ctx, next, sum); err != nil {
		return err
	}
	return e.Publisher.Publish(ctx, next)
}

// reuse: replays re-derive from stored payloads at no cost unless asked to
// refresh; live runs reuse payloads younger than the TTL.
func (e *Enricher) reuse(env events.Envelope) Reuse {
	switch {
	case env.Source == events.SourceReplay && env.Refresh:
		return Reuse{}
	case env.Source == events.SourceReplay:
		return Reuse{Always: true}
	}
	return Reuse{MaxAge: e.ReuseTTL}
}

// payload returns the CPF's raw payload. Concurrent requests for one CPF in
// this process share one Fetch (singleflight); Fetch's Postgres claim covers
// other replicas.
func (e *Enricher) payload(ctx context.Context, cpf string, reuse Reuse) (json.RawMessage, bool, error) {
	type result struct {
		raw  json.RawMessage
		paid bool
	}
	key := fmt.Sprintf("%s|%t|%d", cpf, reuse.Always, reuse.MaxAge)
	// Only the caller whose function ran made the call: the others shared
	// its answer. (Do's "shared" flag is true for the leader too once anyone
	// joined, so it cannot tell who paid.)
	leader := false
	v, err, _ := e.flight.Do(key, func() (any, error) {
		leader = true
		raw, paid, err := e.Payloads.Fetch(ctx, cpf, reuse, func(ctx context.Context) (json.RawMessage, error) {
			return e.API.PersonByCPF(ctx, cpf)
		})
		return result{raw, paid}, err
	})
	if err != nil {
		return nil, false, err
	}
	r := v.(result)
	paid := r.paid && leader
	if paid {
		e.Metrics.PaidCalls.Inc()
	} else {
		e.Metrics.Reused.Inc()
	}
	e.Log.Debug().Str("cpf", logging.CPF(cpf)).Bool("paid", paid).Msg("payload ready")
	return r.raw, paid, nil
}

// alert makes the Work API's account problems loud.
func (e *Enricher) alert(ctx context.Context, err error) error {
	log := logging.Ctx(ctx, e.Log)
	switch failure.KindOf(err) {
	case failure.KindUnauthorized:
		e.Metrics.TokenInvalid.Inc()
		log.Error().Err(err).Msg("ALERT: Work API token invalid or expired; dead-lettering until an operator fixes WORK_API_KEY")
	case failure.KindCreditsExhausted:
		e.Metrics.CreditsExhausted.Inc()
		log.Error().Err(err).Msg("ALERT: Work API out of credits; pausing enrichment")
	}
	return err
}

// CreditsPause is how long the consumer pauses when credits run out.
func CreditsPause(d time.Duration) func(error) time.Duration {
	return func(err error) time.Duration {
		if failure.Is(err, failure.KindCreditsExhausted) {
			return d
		}
		return 0
	}
}
