package enrichment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
)

// PaidAPI is the Work API: every call that reaches it costs credits.
type PaidAPI interface {
	PersonByCPF(ctx context.Context, cpf string) (json.RawMessage, error)
}

// Reuse says which stored answer may stand in for a paid call.
type Reuse = pipeline.Reuse

// Payloads stores raw Work API payloads and the ledger of paid attempts, and
// serialises paying per CPF across processes: Fetch runs pay only when no
// usable answer is stored, while holding a per-CPF claim, after recording
// the attempt, and stores what it paid for.
type Payloads interface {
	Fetch(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (raw json.RawMessage, paid bool, err error)
}

// Writer writes one person to core.*.
type Writer interface {
	WritePerson(ctx context.Context, p *person.Person, leadID string) (entityID string, err error)
}

// BatchWriter writes a lead's persons to core.* and the caller's own
// statements (queue: its trace step) in one transaction, one round trip; it
// returns the entity ids in ps's order. fresh marks the persons that are
// probably not in core.* yet (their payload was just paid for): the writer
// may take a cheaper path for them, with the same rows as a result.
type BatchWriter interface {
	WritePersons(ctx context.Context, ps []*person.Person, fresh []bool, leadID string, queue func(*pgx.Batch)) ([]string, error)
}

// OnWriter is a BatchWriter that also sends on a connection the caller
// holds (nil: its pool), with after's statements after the COMMIT in the
// same round trip. The enricher stores a payload it just paid for inside
// the persons' transaction, on its claim's connection, and releases the
// claim after the COMMIT: one round trip and one commit instead of three
// and two. When only the statements after the COMMIT failed, the error
// wraps coredb.ErrAfterCommit: the rows are written.
type OnWriter interface {
	BatchWriter
	WritePersonsOn(ctx context.Context, on store.Batcher, ps []*person.Person, fresh []bool, leadID string, queue, after func(*pgx.Batch)) ([]string, error)
}

// HoldingPayloads is Payloads that can hand a payload just paid for back
// under its still-held claim, not stored yet (pipeline.Payloads.FetchHeld).
type HoldingPayloads interface {
	Payloads
	FetchHeld(ctx context.Context, cpf string, reuse Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, *pipeline.Claim, error)
}

// Metrics are the counters operators watch.
type Metrics struct {
	PaidCalls        prometheus.Counter
	Reused           prometheus.Counter
	TokenInvalid     prometheus.Counter
	CreditsExhausted prometheus.Counter
	AttemptsCapped   prometheus.Counter
	CreditsOK        prometheus.Gauge
}

// NewMetrics registers the counters on reg (nil = unregistered).
func NewMetrics(reg prometheus.Registerer) Metrics {
	m := Metrics{
		PaidCalls:        prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_paid_calls_total", Help: "Work API calls that returned a person (credits spent)."}),
		Reused:           prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_reused_total", Help: "Persons served from stored payloads at no cost."}),
		TokenInvalid:     prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_token_invalid_total", Help: "ALERT: Work API rejected the token."}),
		CreditsExhausted: prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_workapi_credits_exhausted_total", Help: "ALERT: Work API is out of credits."}),
		AttemptsCapped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "leadflow_paid_attempts_exhausted_total", Help: "Persons dead-lettered because their CPF reached the daily cap of charged attempts."}),
		CreditsOK:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "leadflow_workapi_credits_ok", Help: "1 while the Work API has credits, 0 while it answers that credits ran out."}),
	}
	m.CreditsOK.Set(1)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.PaidCalls, m.Reused, m.TokenInvalid, m.CreditsExhausted, m.AttemptsCapped, m.CreditsOK} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err)
				}
			}
		}
	}
	return m
}

// Persons gets a CPF's paid-or-reused payload and writes the person. It owns
// the skip rule, singleflight within the process, the wait while credits are
// out and the paid-call metric; the per-CPF claim, the attempts ledger and
// storage are Payloads'.
type Persons struct {
	API      PaidAPI
	Payloads Payloads
	Writer   Writer
	Metrics  Metrics
	Log      zerolog.Logger
	// CreditsWait is how long to wait before trying again while the Work
	// API is out of credits: the credits error carries it as its
	// RetryAfter, and the router waits that long with the message in
	// progress (0 = the router's own pause schedule).
	CreditsWait time.Duration
	// OnCreditsOut is told each time the Work API answers that credits ran
	// out (the enricher pauses its consumer, so no replica takes new work).
	OnCreditsOut func(ctx context.Context, wait time.Duration)

	flight singleflight.Group
}

// Warmers returns the store.Warmers of the stores behind s (the payloads'
// claim, the person writer) that have one; the enricher runs them on every
// new connection (store.Warmup).
func (s *Persons) Warmers() []store.Warmer {
	var out []store.Warmer
	for _, c := range []any{s.Payloads, s.Writer} {
		if w, ok := c.(interface {
			Warm(context.Context, pgx.Tx) error
		}); ok {
			out = append(out, w.Warm)
		}
	}
	return out
}

// Result is one person's enrichment.
type Result struct {
	Person   *person.Person
	Raw      json.RawMessage
	EntityID string
	Paid     bool
	// Skipped is set (and everything else empty) when the Work API has
	// nothing usable for the CPF.
	Skipped string
	// Claim is set by FetchHeld when Raw was paid for just now: the CPF's
	// claim, still held, with Raw not stored yet. The caller stores it
	// (inside its transaction, or by closing the claim) and must Close it.
	Claim *pipeline.Claim
}

// Enrich returns cpf's person, written to core.* for leadID ("" for none).
// The Work API answering "nobody" or a permanent refusal skips the person;
// every other error is returned for the pipeline to decide.
func (s *Persons) Enrich(ctx context.Context, cpf string, reuse Reuse, leadID string) (Result, error) {
	r, err := s.Fetch(ctx, cpf, reuse)
	if err != nil || r.Skipped != "" {
		return r, err
	}
	if r.EntityID, err = s.Writer.WritePerson(ctx, r.Person, leadID); err != nil {
		return Result{}, err
	}
	return r, nil
}

// Fetch is Enrich without the write: cpf's paid-or-reused person, or the
// reason it is skipped. Callers that write several persons and their own
// rows in one transaction (the enricher) use it with BatchWriter.
func (s *Persons) Fetch(ctx context.Context, cpf string, reuse Reuse) (Result, error) {
	return s.fetch(ctx, cpf, reuse, false)
}

// FetchHeld is Fetch, except that a payload paid for just now comes back
// under its CPF's claim, not stored yet (Result.Claim), when the payloads
// can do that (HoldingPayloads). The caller must Close a returned claim.
func (s *Persons) FetchHeld(ctx context.Context, cpf string, reuse Reuse) (Result, error) {
	return s.fetch(ctx, cpf, reuse, true)
}

func (s *Persons) fetch(ctx context.Context, cpf string, reuse Reuse, hold bool) (Result, error) {
	raw, paid, claim, err := s.payload(ctx, cpf, reuse, hold)
	if err != nil {
		if errors.Is(err, pipeline.ErrPaidAttemptsExhausted) {
			s.Metrics.AttemptsCapped.Inc()
			return Result{}, err
		}
		if failure.Is(err, failure.KindPermanent) || failure.Is(err, failure.KindNotFound) {
			return Result{Skipped: err.Error()}, nil
		}
		return Result{}, err
	}
	p, err := person.Parse(raw)
	if err != nil || !p.HasCPF() {
		if claim != nil {
			// Paid for: stored whatever it holds, like every paid answer.
			if err := claim.Close(ctx); err != nil {
				return Result{}, err
			}
		}
		return Result{Skipped: "stored payload is not a person"}, nil
	}
	return Result{Person: p, Raw: raw, Paid: paid, Claim: claim}, nil
}

// payload returns the CPF's raw payload. Concurrent requests for one CPF in
// this process share one Fetch (singleflight); Fetch's Postgres claim covers
// other replicas. With hold, a payload paid for just now comes back under its
// still-held claim (to the caller whose function paid; the others get the
// payload only).
func (s *Persons) payload(ctx context.Context, cpf string, reuse Reuse, hold bool) (json.RawMessage, bool, *pipeline.Claim, error) {
	type result struct {
		raw   json.RawMessage
		paid  bool
		claim *pipeline.Claim
	}
	key := fmt.Sprintf("%s|%t|%d|%d", cpf, reuse.Always, reuse.MaxAge, reuse.FetchedAfter.UnixNano())
	// Only the caller whose function ran made the call: the others shared
	// its answer. (Do's "shared" flag is true for the leader too once anyone
	// joined, so it cannot tell who paid.)
	leader := false
	holding, canHold := s.Payloads.(HoldingPayloads)
	v, err, _ := s.flight.Do(key, func() (any, error) {
		leader = true
		pay := func(ctx context.Context) (json.RawMessage, error) { return s.API.PersonByCPF(ctx, cpf) }
		var r result
		var err error
		if hold && canHold {
			r.raw, r.claim, err = holding.FetchHeld(ctx, cpf, reuse, pay)
			r.paid = r.claim != nil
		} else {
			r.raw, r.paid, err = s.Payloads.Fetch(ctx, cpf, reuse, pay)
		}
		if err != nil {
			s.alert(ctx, err)
			return nil, err
		}
		s.Metrics.CreditsOK.Set(1)
		return r, nil
	})
	if err != nil {
		if failure.Is(err, failure.KindCreditsExhausted) && s.CreditsWait > 0 {
			// Waiting is the router's (messaging.waitNotFail): the message
			// stays in progress and the next try comes after CreditsWait.
			// Waiting here instead would let the try's own deadline cut a
			// wait short and end it as a failure.
			return nil, false, nil, failure.CreditsExhausted("enrichment.credits", s.CreditsWait, err)
		}
		return nil, false, nil, err
	}
	r := v.(result)
	paid := r.paid && leader
	var claim *pipeline.Claim
	if leader {
		claim = r.claim
	}
	if paid {
		s.Metrics.PaidCalls.Inc()
	} else {
		s.Metrics.Reused.Inc()
	}
	s.Log.Debug().Ctx(ctx).Str("cpf", logging.CPF(cpf)).Bool("paid", paid).Msg("payload ready")
	return r.raw, paid, claim, nil
}

// alert makes the Work API's account problems loud.
func (s *Persons) alert(ctx context.Context, err error) {
	log := logging.Ctx(ctx, s.Log)
	switch failure.KindOf(err) {
	case failure.KindUnauthorized:
		s.Metrics.TokenInvalid.Inc()
		log.Error().Err(err).Msg("ALERT: Work API token invalid or expired; dead-lettering until an operator fixes WORK_API_KEY")
	case failure.KindCreditsExhausted:
		s.Metrics.CreditsExhausted.Inc()
		s.Metrics.CreditsOK.Set(0)
		if s.OnCreditsOut != nil {
			s.OnCreditsOut(ctx, s.CreditsWait)
		}
		log.Error().Err(err).Dur("next_try_in", s.CreditsWait).Msg("ALERT: Work API out of credits; waiting (leads stay in progress)")
	}
}
