package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/store/coredb"
)

// EnrichRequest is the body of POST /api/v1/enrich: exactly one field set.
type EnrichRequest struct {
	CPF   string `json:"cpf"`
	Phone string `json:"phone"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// EnrichResult is one person (cpf, phone, email) or name matches.
type EnrichResult struct {
	Person  *coredb.Customer
	Matches []coredb.CustomerSummary
	Paid    bool // a Work API call was made for this request
}

// Resolve is the shared identity resolution (pkg/enrichment): records
// first, then Diretrix.
type Resolve interface {
	Resolve(ctx context.Context, c events.Customer) (enrichment.Resolution, error)
}

// CustomerReader reads core.*.
type CustomerReader interface {
	GetCustomer(ctx context.Context, q coredb.Query) (*coredb.Customer, error)
	SearchByName(ctx context.Context, name string, limit int) ([]coredb.CustomerSummary, error)
}

// Enrich resolves and enriches one person synchronously. It holds no rule of
// its own: resolution and "a paid-or-reused payload, then write the person"
// are pkg/enrichment's, exactly as the pipeline does them.
type Enrich struct {
	Resolver  Resolve // nil when Diretrix is not configured: phone/email answer Unavailable
	Persons   *enrichment.Persons
	Customers CustomerReader
	ReuseTTL  time.Duration
}

// ErrUnavailable marks a lookup this deployment cannot make (DIRETRIX_* unset).
var ErrUnavailable = failure.Transient("ingest.enrich", constError("phone and email lookups need DIRETRIX_BASE_URL, DIRETRIX_USER and DIRETRIX_PASS"))

// Errors of Enrich, for the HTTP mapping.
const (
	errEnrichOne = constError(`give exactly one of "cpf", "phone", "email" or "name"`)
	errBadCPF    = constError("cpf is not a valid CPF")
	errBadPhone  = constError("phone is not a Brazilian phone (DDD + number)")
	errBadEmail  = constError("email is not an email address")
)

// Enrich answers one request.
func (e *Enrich) Enrich(ctx context.Context, req EnrichRequest) (EnrichResult, error) {
	set := 0
	for _, v := range []string{req.CPF, req.Phone, req.Email, req.Name} {
		if strings.TrimSpace(v) != "" {
			set++
		}
	}
	if set != 1 {
		return EnrichResult{}, failure.Permanent("ingest.enrich", errEnrichOne)
	}
	switch {
	case strings.TrimSpace(req.Name) != "":
		// No paid lookup exists by name: search what core.* already holds.
		hits, err := e.Customers.SearchByName(ctx, req.Name, 20)
		if err != nil {
			return EnrichResult{}, failure.Transient("ingest.enrich", err)
		}
		if len(hits) == 0 {
			return EnrichResult{}, failure.NotFound("ingest.enrich")
		}
		return EnrichResult{Matches: hits}, nil
	case strings.TrimSpace(req.CPF) != "":
		cpf := brdata.Digits(req.CPF)
		if !brdata.ValidCPF(cpf) {
			return EnrichResult{}, failure.Permanent("ingest.enrich", errBadCPF)
		}
		return e.byCPF(ctx, cpf)
	}
	if e.Resolver == nil {
		return EnrichResult{}, ErrUnavailable
	}
	c := events.Customer{Phone: req.Phone, Email: req.Email}
	if req.Phone != "" && !brdata.PlausiblePhone(brdata.NormalizePhone(req.Phone)) {
		return EnrichResult{}, failure.Permanent("ingest.enrich", errBadPhone)
	}
	if req.Email != "" && !brdata.PlausibleEmail(brdata.NormalizeEmail(req.Email)) {
		return EnrichResult{}, failure.Permanent("ingest.enrich", errBadEmail)
	}
	res, err := e.Resolver.Resolve(ctx, c)
	if err != nil {
		return EnrichResult{}, err
	}
	if len(res.Persons) == 0 {
		return EnrichResult{}, failure.NotFound("ingest.enrich")
	}
	return e.byCPF(ctx, res.Persons[0].CPF)
}

func (e *Enrich) byCPF(ctx context.Context, cpf string) (EnrichResult, error) {
	r, err := e.Persons.Enrich(ctx, cpf, enrichment.Reuse{MaxAge: e.ReuseTTL}, "")
	if err != nil {
		return EnrichResult{}, err
	}
	if r.Skipped != "" {
		// The Work API has nothing usable for the CPF: the same "skip" the
		// enricher records, which for one person means "not found".
		return EnrichResult{}, failure.NotFound("ingest.enrich")
	}
	paid := r.Paid
	c, err := e.Customers.GetCustomer(ctx, coredb.Query{CPF: cpf})
	if err != nil {
		if errors.Is(err, coredb.ErrNotFound) {
			return EnrichResult{}, failure.NotFound("ingest.enrich")
		}
		return EnrichResult{}, failure.Transient("ingest.enrich", err)
	}
	return EnrichResult{Person: c, Paid: paid}, nil
}
