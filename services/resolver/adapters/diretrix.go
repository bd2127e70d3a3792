package adapters

import (
	"context"

	"github.com/leadflow/leadflow/pkg/clients/diretrix"
)

// Directory adapts the Diretrix client to app.Directory.
type Directory struct {
	Client *diretrix.Client
}

// CPFByPhone implements app.Directory.
func (d Directory) CPFByPhone(ctx context.Context, phone string) (string, error) {
	m, err := d.Client.ByPhone(ctx, phone)
	return m.CPF, err
}

// CPFByEmail implements app.Directory.
func (d Directory) CPFByEmail(ctx context.Context, email string) (string, error) {
	m, err := d.Client.ByEmail(ctx, email)
	return m.CPF, err
}
