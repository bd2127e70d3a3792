// Package coredb writes enriched persons to the core.* tables exactly as
// shared/contracts/db/DB.md describes, and reads them back for the resolver
// and the query API. It never logs: everything it touches is personal data.
package coredb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/store"
)

const opWrite = "coredb.write"

// ErrInvalidCPF is wrapped (as a permanent failure) when a person has no
// valid CPF: no retry can make it writable.
var ErrInvalidCPF = errors.New("coredb: person has no valid CPF")

// Result says what WritePerson did.
type Result struct {
	EntityID       string
	Created        bool
	EmailsAdded    int
	PhonesAdded    int
	AddressesAdded int
}

// Writer writes persons to core.*. It is safe for concurrent use.
type Writer struct {
	pool       *pgxpool.Pool
	multiplier decimal.Decimal
	now        func() time.Time
	// group sends the writes of one CPF on the writer's own pool (no
	// caller's connection, nothing after the COMMIT) together with the
	// other such writes waiting: one round trip and one commit for all of
	// them (store.Group). nil: each in its own transaction.
	group *store.Group
}

// maxGroupedWrites bounds the persons' writes sharing one transaction.
const maxGroupedWrites = 64

// NewWriter returns a Writer; incomeMultiplier is INCOME_MULTIPLIER.
func NewWriter(pool *pgxpool.Pool, incomeMultiplier decimal.Decimal) *Writer {
	return &Writer{pool: pool, multiplier: incomeMultiplier, now: time.Now, group: store.NewGroup(pool, maxGroupedWrites)}
}

// brt is Brazil's civil time (no DST since 2019). The financial year follows
// it, not the server's zone, so New Year's Eve evenings land in the right year.
var brt = time.FixedZone("BRT", -3*60*60)

// WritePerson writes one person in one transaction. The whole transaction is
// a single pipelined batch (BEGIN … COMMIT, one network round trip): after
// the advisory lock, one statement per person (sqlPerson) finds the entity
// by CPF, which is stable because the lock serialises writers of that CPF.
func (w *Writer) WritePerson(ctx context.Context, p *person.Person, leadID string) (Result, error) {
	rs, err := w.WritePersons(ctx, []*person.Person{p}, nil, leadID, nil)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// WritePersons writes several persons (a lead's one or two) and the
// caller's own statements (queue, e.g. the stage's trace step; nil = none) in
// one transaction sent as one pipelined batch: one round trip, one commit.
// The per-CPF advisory locks are all taken first, in CPF order, so two
// transactions writing the same people never wait for each other in a
// cycle. The results follow ps's order.
//
// fresh (nil, or one flag per person) marks persons that are probably not in
// core.* yet, such as those whose payload was just bought: they are written
// with sqlNewPerson, which costs Postgres about 0.6x the merge's CPU.
// A fresh person that turns out to exist is merged right after, in a second
// transaction (the first has committed the others and the caller's
// statements by then); the rows are the same either way.
//
// A write of one CPF (one lock) shares its round trip and its transaction
// with the other such writes waiting (store.Group), ordered by CPF, so the
// shared transaction takes its locks in CPF order too. It returns once
// committed, as alone.
func (w *Writer) WritePersons(ctx context.Context, ps []*person.Person, fresh []bool, leadID string, queue func(*pgx.Batch)) ([]Result, error) {
	return w.WritePersonsOn(ctx, nil, ps, fresh, leadID, queue, nil)
}

// ErrAfterCommit is wrapped when WritePersonsOn's transaction committed but
// one of the statements sent after its COMMIT failed: the rows are written.
var ErrAfterCommit = errors.New("coredb: a statement after the commit failed")

// WritePersonsOn is WritePersons sent on a connection the caller holds (nil:
// a connection of the writer's pool), with after's statements (nil: none)
// sent after the COMMIT in the same round trip: a session lock the caller
// releases once the rows are visible, say. When the transaction committed
// and one of those failed, it returns the results and an error wrapping
// ErrAfterCommit.
func (w *Writer) WritePersonsOn(ctx context.Context, on store.Batcher, ps []*person.Person, fresh []bool, leadID string, queue, after func(*pgx.Batch)) ([]Result, error) {
	mine := on == nil
	if on == nil {
		on = w.pool
	}
	rows := make([]personRows, len(ps))
	cpfs := make([]string, len(ps))
	for i, p := range ps {
		if p == nil {
			return nil, failure.Permanent(opWrite, ErrInvalidCPF)
		}
		cpf := brdata.Digits(p.CPF())
		if !brdata.ValidCPF(cpf) {
			return nil, failure.Permanent(opWrite, ErrInvalidCPF)
		}
		cpfs[i], rows[i] = cpf, deriveRows(p, cpf, leadID, w.multiplier)
	}
	locks := slices.Clone(cpfs)
	slices.Sort(locks)
	locks = slices.Compact(locks)
	year := int32(w.now().In(brt).Year())

	var res []Result
	var tailErr, err error
	if mine && after == nil && w.group != nil && len(locks) == 1 {
		// One CPF's lock per batch, the batches ordered by CPF: a shared
		// transaction takes its locks in CPF order, as every other writer.
		res, err = w.grouped(ctx, locks[0], rows, cpfs, fresh, year, queue)
	} else {
		res, tailErr, err = w.alone(ctx, on, locks, rows, cpfs, fresh, year, queue, after)
	}
	if err != nil {
		return nil, classify(err)
	}
	// Fresh persons that existed after all (sqlNewPerson wrote nothing).
	var again []*person.Person
	var at []int
	for i := range res {
		if res[i].EntityID == "" {
			again, at = append(again, ps[i]), append(at, i)
		}
	}
	if len(again) > 0 {
		// On the same connection: a caller holding it must not need a
		// second one from the pool.
		if mine {
			on = nil
		}
		merged, err := w.WritePersonsOn(ctx, on, again, nil, leadID, nil, nil)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			res[i] = merged[k]
		}
	}
	if tailErr != nil {
		return res, fmt.Errorf("%w: %w", ErrAfterCommit, tailErr)
	}
	return res, nil
}

// grouped sends one CPF's write (its lock, its persons, the caller's
// statements) through the writer's group, in a transaction shared with the
// other writes waiting; Postgres's default READ COMMITTED (store.Open sets
// it for every session) gives each statement the previous lock holder's
// rows.
func (w *Writer) grouped(ctx context.Context, cpf string, rows []personRows, cpfs []string, fresh []bool, year int32, queue func(*pgx.Batch)) ([]Result, error) {
	b := &pgx.Batch{}
	b.Queue(sqlLock, cpf)
	out := make([]Result, len(rows))
	for i := range rows {
		res := &out[i]
		queuePerson(b, personSQL(fresh, i), rows[i], cpfs[i], year).QueryRow(func(row pgx.Row) error { return scanResult(row, res) })
	}
	if queue != nil {
		queue(b)
	}
	if err := w.group.Send(ctx, cpf, b); err != nil {
		return nil, err
	}
	return out, nil
}

// alone sends the write in its own transaction, on on.
func (w *Writer) alone(ctx context.Context, on store.Batcher, locks []string, rows []personRows, cpfs []string, fresh []bool, year int32, queue, after func(*pgx.Batch)) (out []Result, tailErr, err error) {
	b := &pgx.Batch{}
	// READ COMMITTED explicitly: each statement must see what the previous
	// lock holder committed, whatever the server's default isolation is.
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	for _, cpf := range locks {
		b.Queue(sqlLock, cpf)
	}
	for i := range rows {
		queuePerson(b, personSQL(fresh, i), rows[i], cpfs[i], year)
	}
	before := b.Len()
	if queue != nil {
		queue(b)
	}
	extra := b.Len() - before
	b.Queue("COMMIT")
	before = b.Len()
	if after != nil {
		after(b)
	}
	tail := b.Len() - before
	return w.run(ctx, on, b, len(locks), rows, extra, tail)
}

// personSQL is the statement for person i: insert-only when marked fresh.
func personSQL(fresh []bool, i int) string {
	if i < len(fresh) && fresh[i] {
		return sqlNewPerson
	}
	return sqlPerson
}

// queuePerson queues one person's statement (after the locks): sqlPerson or
// sqlNewPerson, which take the same parameters.
func queuePerson(b *pgx.Batch, sql string, r personRows, cpf string, year int32) *pgx.QueuedQuery {
	pr := r.profile
	args := []any{cpf, null(pr.sex), null(pr.birthDate), null(pr.nationality),
		null(pr.maritalStatus), null(pr.educationLevel), string(pr.metadata)}
	if f := r.financial; f != nil {
		args = append(args, true, year, null(f.income), f.creditScore, null(f.riskScore), string(f.metadata))
	} else {
		args = append(args, false, year, nil, nil, nil, nil)
	}
	emails, verified, emeta := make([]string, len(r.emails)), make([]bool, len(r.emails)), make([]string, len(r.emails))
	for i, e := range r.emails {
		emails[i], verified[i], emeta[i] = e.email, e.verified, e.metadata
	}
	args = append(args, emails, verified, emeta)
	n := len(r.phones)
	phones, types, whatsapp, carriers, pmeta := make([]string, n), make([]string, n), make([]bool, n), make([]*string, n), make([]string, n)
	for i, ph := range r.phones {
		phones[i], types[i], whatsapp[i], carriers[i], pmeta[i] = ph.phone, ph.phoneType, ph.whatsapp, nullable(ph.carrier), ph.metadata
	}
	args = append(args, phones, types, whatsapp, carriers, pmeta)
	var cols [8][]*string
	for i := range cols {
		cols[i] = make([]*string, 0, len(r.addresses))
	}
	for _, a := range r.addresses {
		for i, v := range []string{a.streetType, a.street, a.number, a.complement, a.neighborhood, a.city, a.state, a.zipCode} {
			cols[i] = append(cols[i], nullable(v))
		}
	}
	for _, c := range cols {
		args = append(args, c)
	}
	args = append(args, null(r.entity.name), null(r.entity.canonicalName), null(r.entity.leadID))
	return b.Queue(sql, args...)
}

// run sends b and reads its results: BEGIN, the locks, the persons, extra
// statements of the caller, COMMIT, then tail statements after the COMMIT,
// whose first error is tailErr (the transaction committed by then).
func (w *Writer) run(ctx context.Context, on store.Batcher, b *pgx.Batch, locks int, rows []personRows, extra, tail int) (out []Result, tailErr, err error) {
	br := on.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() {
		// After a successful in-batch COMMIT this only returns the
		// connection; after a failure it rolls back the aborted transaction.
		if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) && err == nil {
			err = rbErr
		}
	}()
	defer func() {
		if cerr := br.Close(); cerr != nil && err == nil && tailErr == nil {
			if tail > 0 {
				tailErr = cerr // after the COMMIT: the rows are written
			} else {
				err = cerr
			}
		}
	}()

	if _, err = br.Exec(); err != nil { // BEGIN
		return nil, nil, err
	}
	for i := 0; i < locks; i++ { // advisory locks
		if _, err = br.Exec(); err != nil {
			return nil, nil, err
		}
	}
	out = make([]Result, len(rows))
	for i := range rows {
		if err = scanResult(br.QueryRow(), &out[i]); err != nil {
			return nil, nil, err
		}
	}
	for i := 0; i < extra; i++ { // the caller's statements
		if _, err = br.Exec(); err != nil {
			return nil, nil, err
		}
	}
	if _, err = br.Exec(); err != nil { // COMMIT
		return nil, nil, err
	}
	for i := 0; i < tail; i++ { // after the COMMIT
		if _, tailErr = br.Exec(); tailErr != nil {
			return out, tailErr, nil
		}
	}
	return out, nil, nil
}

// scanResult reads a person's statement's answer into res.
func scanResult(row pgx.Row, res *Result) error {
	var id *string // NULL: sqlNewPerson found the entity and wrote nothing
	*res = Result{}
	if err := row.Scan(&id, &res.Created, &res.EmailsAdded, &res.PhonesAdded, &res.AddressesAdded); err != nil {
		return err
	}
	if id == nil {
		*res = Result{}
	} else {
		res.EntityID = *id
	}
	return nil
}

func classify(err error) error { return store.Classify(opWrite, err) }

// null sends "" as SQL NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}
