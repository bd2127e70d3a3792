package adapters

import (
	"context"
	"encoding/json"

	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/store/coredb"
)

// WorkAPI adapts the Work API client to app.PaidAPI.
type WorkAPI struct {
	Client *workapi.Client
}

// PersonByCPF implements app.PaidAPI.
func (w WorkAPI) PersonByCPF(ctx context.Context, cpf string) (json.RawMessage, error) {
	r, err := w.Client.CPF(ctx, cpf)
	if err != nil {
		return nil, err
	}
	return r.Raw, nil
}

// Writer adapts coredb to app.Writer.
type Writer struct {
	Core *coredb.Writer
}

// WritePerson implements app.Writer.
func (w Writer) WritePerson(ctx context.Context, p *person.Person, leadID string) (string, error) {
	r, err := w.Core.WritePerson(ctx, p, leadID)
	if err != nil {
		return "", err
	}
	return r.EntityID, nil
}
