package coredb

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/store"
)

// Warm is the person writer's store.Warmer: the lock and both person
// statements (a new person, a merge) for the contract's full Work API
// payload under store.WarmCPF, with the same arguments WritePersons sends.
func (w *Writer) Warm(ctx context.Context, tx pgx.Tx) error {
	p, err := person.Parse(contracts.Read("workapi/cpf.json"))
	if err != nil {
		return err
	}
	p.Basic.CPF = person.CPF(store.WarmCPF)
	cpf := brdata.Digits(p.CPF())
	rows := deriveRows(p, cpf, store.WarmLead, w.multiplier)
	year := int32(w.now().In(brt).Year())
	b := &pgx.Batch{}
	b.Queue(sqlLock, cpf)
	queuePerson(b, sqlNewPerson, rows, cpf, year)
	queuePerson(b, sqlPerson, rows, cpf, year)
	return tx.SendBatch(ctx, b).Close()
}
