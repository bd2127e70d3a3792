package enrichment

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/coredb"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
)

// WorkAPI adapts the Work API client to PaidAPI.
type WorkAPI struct {
	Client *workapi.Client
}

// PersonByCPF implements PaidAPI.
func (w WorkAPI) PersonByCPF(ctx context.Context, cpf string) (json.RawMessage, error) {
	r, err := w.Client.CPF(ctx, cpf)
	if err != nil {
		return nil, err
	}
	return r.Raw, nil
}

// Charge tells the attempts ledger what a failed paid call cost
// (workapi/API.md, "Paid calls"): an answer was charged; a call that never
// reached the API, a 429, a credits or token refusal was not; a timeout or a
// 5xx after sending lost a charged reply.
func Charge(err error) string {
	switch failure.KindOf(err) {
	case failure.KindNotFound:
		return pipeline.AttemptNotFound
	case failure.KindPermanent:
		return pipeline.AttemptRefused
	case failure.KindRateLimited, failure.KindCreditsExhausted, failure.KindUnauthorized:
		return pipeline.AttemptNotCharged
	}
	if httpx.NeverSent(err) {
		return pipeline.AttemptNotCharged
	}
	return pipeline.AttemptLost
}

// CoreWriter adapts coredb to Writer.
type CoreWriter struct {
	Core *coredb.Writer
}

// Warm is coredb's store.Warmer.
func (w CoreWriter) Warm(ctx context.Context, tx pgx.Tx) error { return w.Core.Warm(ctx, tx) }

// WritePerson implements Writer.
func (w CoreWriter) WritePerson(ctx context.Context, p *person.Person, leadID string) (string, error) {
	r, err := w.Core.WritePerson(ctx, p, leadID)
	if err != nil {
		return "", err
	}
	return r.EntityID, nil
}

// WritePersons implements BatchWriter.
func (w CoreWriter) WritePersons(ctx context.Context, ps []*person.Person, fresh []bool, leadID string, queue func(*pgx.Batch)) ([]string, error) {
	return w.WritePersonsOn(ctx, nil, ps, fresh, leadID, queue, nil)
}

// WritePersonsOn implements OnWriter.
func (w CoreWriter) WritePersonsOn(ctx context.Context, on store.Batcher, ps []*person.Person, fresh []bool, leadID string, queue, after func(*pgx.Batch)) ([]string, error) {
	rs, err := w.Core.WritePersonsOn(ctx, on, ps, fresh, leadID, queue, after)
	if rs == nil {
		return nil, err
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.EntityID
	}
	return ids, err
}

// Diretrix adapts the Diretrix client to Directory.
type Diretrix struct {
	Client *diretrix.Client
}

// CPFByPhone implements Directory.
func (d Diretrix) CPFByPhone(ctx context.Context, phone string) (string, error) {
	m, err := d.Client.ByPhone(ctx, phone)
	return m.CPF, err
}

// CPFByEmail implements Directory.
func (d Diretrix) CPFByEmail(ctx context.Context, email string) (string, error) {
	m, err := d.Client.ByEmail(ctx, email)
	return m.CPF, err
}
