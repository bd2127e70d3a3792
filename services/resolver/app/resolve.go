// Package app holds the resolver's use case: the rules of RESOLUTION.md.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
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

// Leads fetches a lead from C2S when the event lacks contact data.
type Leads interface {
	GetLead(ctx context.Context, id string) (*c2s.Lead, error)
}

// Store durably records a resolution (identities learnt, the lead's
// contacts, the trace) before it is published.
type Store interface {
	SaveResolution(ctx context.Context, env events.Envelope, r Resolution) error
}

// Publisher publishes the outcome.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) error
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

// Resolver is the use case.
type Resolver struct {
	Directory     Directory
	Records       Records
	Leads         Leads
	Store         Store
	Publisher     Publisher
	LookupTimeout time.Duration // each identifier's own budget
}

// Handle resolves one lead.received event end to end.
func (r *Resolver) Handle(ctx context.Context, env events.Envelope, in events.LeadReceived) error {
	customer, err := r.customer(ctx, env.LeadID, in.Customer)
	if err != nil {
		return err
	}
	res, err := r.Resolve(ctx, customer)
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

// Resolve applies RESOLUTION.md: each identifier on its own, in parallel,
// records first and then Diretrix; the outcome depends only on the CPFs.
// A transient failure of either lookup fails the whole resolution, so no
// half answer is ever published.
func (r *Resolver) Resolve(ctx context.Context, c events.Customer) (Resolution, error) {
	var res Resolution
	res.Phone = prepare(brdata.NormalizePhone(c.Phone), brdata.PlausiblePhone)
	res.Email = prepare(brdata.NormalizeEmail(c.Email), brdata.PlausibleEmail)
	g, gctx := errgroup.WithContext(ctx)
	if res.Phone.State == "" {
		g.Go(func() error {
			return r.lookup(gctx, &res.Phone, r.Records.KnownPhone, r.Directory.CPFByPhone, "phone")
		})
	}
	if res.Email.State == "" {
		g.Go(func() error {
			return r.lookup(gctx, &res.Email, r.Records.KnownEmail, r.Directory.CPFByEmail, "email")
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	decide(&res)
	return res, nil
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

func (r *Resolver) lookup(ctx context.Context, l *Lookup,
	known func(context.Context, string) (string, bool, error),
	directory func(context.Context, string) (string, error), kind string) error {
	cpf, found, err := known(ctx, l.Value)
	if err != nil {
		return err
	}
	if found && brdata.ValidCPF(cpf) {
		l.State, l.CPF, l.Source = StateFound, cpf, SourceDB
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
