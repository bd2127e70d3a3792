package enrichment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// Directory finds a CPF for an identifier (Diretrix). "Nobody" is an error
// of kind failure.KindNotFound.
type Directory interface {
	CPFByPhone(ctx context.Context, phone string) (string, error)
	CPFByEmail(ctx context.Context, email string) (string, error)
}

// Records are the product's own records: core.* contacts and earlier
// resolutions. found=false means "not known here".
type Records interface {
	KnownPhone(ctx context.Context, phone string) (cpf string, found bool, err error)
	KnownEmail(ctx context.Context, email string) (cpf string, found bool, err error)
}

// BothRecords is Records that answers both identifiers in one round trip.
type BothRecords interface {
	KnownBoth(ctx context.Context, phone, email string) (phoneCPF string, phoneFound bool, emailCPF string, emailFound bool, err error)
}

// Identity resolves a lead's phone and email to CPFs (RESOLUTION.md). The
// resolver and ingest's POST /api/v1/enrich share it.
type Identity struct {
	Directory     Directory
	Records       Records
	LookupTimeout time.Duration // each identifier's own budget
}

// Source of a CPF.
const (
	SourceDB       = "db"
	SourceDiretrix = "diretrix"
)

// Identifier states, for the trace.
const (
	StateMissing  = "missing"
	StateInvalid  = "invalid"
	StateNotFound = "not_found"
	StateFound    = "found"
)

// Lookup is what one identifier led to.
type Lookup struct {
	Value  string // normalised; "" when missing or invalid
	State  string
	CPF    string
	Source string
}

// Resolution is the whole answer for a lead.
type Resolution struct {
	Phone, Email Lookup
	Outcome      string // same_person | single | different_people | unresolved
	Persons      []events.ResolvedPerson
	Reason       string // when unresolved
}

// Resolve applies RESOLUTION.md: each identifier on its own, in parallel,
// records first and then Diretrix; the outcome depends only on the CPFs.
// A transient failure of either lookup fails the whole resolution, so no
// half answer is ever published.
func (r *Identity) Resolve(ctx context.Context, c events.Customer) (Resolution, error) {
	var res Resolution
	res.Phone = prepare(brdata.NormalizePhone(c.Phone), brdata.PlausiblePhone)
	res.Email = prepare(brdata.NormalizeEmail(c.Email), brdata.PlausibleEmail)
	knownPhone, knownEmail := r.Records.KnownPhone, r.Records.KnownEmail
	if both, ok := r.Records.(BothRecords); ok && res.Phone.State == "" && res.Email.State == "" {
		// Both identifiers' own records in one round trip; Diretrix, where
		// needed, is still asked for each in parallel.
		pc, pf, ec, ef, err := both.KnownBoth(ctx, res.Phone.Value, res.Email.Value)
		if err != nil {
			return res, err
		}
		// What the records know needs no job of its own.
		recorded(&res.Phone, pc, pf)
		recorded(&res.Email, ec, ef)
		knownPhone = func(context.Context, string) (string, bool, error) { return pc, pf, nil }
		knownEmail = func(context.Context, string) (string, bool, error) { return ec, ef, nil }
	}
	var jobs []func(context.Context) error
	if res.Phone.State == "" {
		jobs = append(jobs, func(ctx context.Context) error {
			return r.lookup(ctx, &res.Phone, knownPhone, r.Directory.CPFByPhone, "phone")
		})
	}
	if res.Email.State == "" {
		jobs = append(jobs, func(ctx context.Context) error {
			return r.lookup(ctx, &res.Email, knownEmail, r.Directory.CPFByEmail, "email")
		})
	}
	if err := parallel(ctx, jobs); err != nil {
		return res, err
	}
	decide(&res)
	return res, nil
}

// parallel runs jobs at the same time and returns the first error, which
// cancels the others' context (errgroup). A single job runs on the caller's
// goroutine: most leads need one look-up at most, and a new goroutine per
// lead grows a fresh stack through the HTTP client.
func parallel(ctx context.Context, jobs []func(context.Context) error) error {
	switch len(jobs) {
	case 0:
		return nil
	case 1:
		return jobs[0](ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, job := range jobs {
		g.Go(func() error { return job(gctx) })
	}
	return g.Wait()
}

func prepare(normalized string, plausible func(string) bool) Lookup {
	switch {
	case normalized == "":
		return Lookup{State: StateMissing}
	case !plausible(normalized):
		return Lookup{State: StateInvalid}
	}
	return Lookup{Value: normalized}
}

func (r *Identity) lookup(ctx context.Context, l *Lookup,
	known func(context.Context, string) (string, bool, error),
	directory func(context.Context, string) (string, error), kind string) error {
	cpf, found, err := known(ctx, l.Value)
	if err != nil {
		return err
	}
	if recorded(l, cpf, found) {
		return nil
	}
	lctx := ctx
	if r.LookupTimeout > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, r.LookupTimeout)
		defer cancel()
	}
	cpf, err = directory(lctx, l.Value)
	switch {
	case failure.Is(err, failure.KindNotFound):
		l.State = StateNotFound
		return nil
	case err != nil:
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return failure.Transient("resolver."+kind, err)
		}
		return err
	case !brdata.ValidCPF(cpf):
		// The client filters candidates already; never trust one that slips through.
		l.State = StateNotFound
		return nil
	}
	l.State, l.CPF, l.Source = StateFound, cpf, SourceDiretrix
	return nil
}

// recorded settles l from the product's own records when they hold a valid
// CPF for it, and reports whether they did.
func recorded(l *Lookup, cpf string, found bool) bool {
	if !found || !brdata.ValidCPF(cpf) {
		return false
	}
	l.State, l.CPF, l.Source = StateFound, cpf, SourceDB
	return true
}

func decide(res *Resolution) {
	p, e := res.Phone, res.Email
	switch {
	case p.CPF != "" && e.CPF != "" && p.CPF == e.CPF:
		res.Outcome = "same_person"
		res.Persons = []events.ResolvedPerson{{CPF: p.CPF, Role: events.RoleBoth, PhoneSource: p.Source, EmailSource: e.Source}}
	case p.CPF != "" && e.CPF != "":
		res.Outcome = "different_people"
		res.Persons = []events.ResolvedPerson{
			{CPF: p.CPF, Role: events.RolePhone, PhoneSource: p.Source},
			{CPF: e.CPF, Role: events.RoleEmail, EmailSource: e.Source},
		}
	case p.CPF != "":
		res.Outcome = "single"
		res.Persons = []events.ResolvedPerson{{CPF: p.CPF, Role: events.RolePhone, PhoneSource: p.Source}}
	case e.CPF != "":
		res.Outcome = "single"
		res.Persons = []events.ResolvedPerson{{CPF: e.CPF, Role: events.RoleEmail, EmailSource: e.Source}}
	default:
		res.Outcome = "unresolved"
		res.Reason = fmt.Sprintf("no CPF found (phone: %s, email: %s)", p.State, e.State)
	}
}
