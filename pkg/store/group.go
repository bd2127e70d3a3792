package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Group writes the batches of concurrent callers together: one round trip
// and one commit for every batch waiting, instead of one each (group
// commit). One flusher sends: it takes every batch waiting (up to max) and
// sends them as one batch, one implicit transaction, so a lone caller waits
// for nothing and the batches that arrive while one is in flight all go in
// the next. Under load that is several leads per commit.
//
// A batch given to a Group holds only writes that may share a transaction
// with other leads' writes: no BEGIN or COMMIT of its own, no session
// state, nothing read back but through the queued queries' callbacks
// (pgx.QueuedQuery.Exec and the like), which must only set values: they run
// again when the batch is written a second time. If the shared transaction
// fails (one bad row, a deadlock with another writer), every batch in it is
// written again on its own, so one cannot fail the others, and each caller
// gets its own batch's error (unclassified: the caller names its op).
//
// Send returns once its batch is committed, so a caller that acks after
// Send still acks only a durable effect.
type Group struct {
	db interface {
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	}
	in  chan *grouped
	max int
}

type grouped struct {
	ctx  context.Context // the caller's, for its span; the writes run under the group's deadline
	key  string
	b    *pgx.Batch
	err  error
	done chan struct{}
}

// groupTimeout bounds one shared transaction and each batch written alone
// after it failed.
const groupTimeout = 10 * time.Second

// NewGroup starts a Group writing through db (a pool) up to max batches per
// transaction. Its flusher lives as long as the process.
func NewGroup(db Batcher, max int) *Group {
	g := &Group{db: db, in: make(chan *grouped, max), max: max}
	go g.loop()
	return g
}

// Waiting is how many batches wait for the flusher.
func (g *Group) Waiting() int { return len(g.in) }

// Send writes b in the next shared transaction and returns its outcome. key
// orders the batches inside a transaction, so that two transactions
// locking the same things take their locks in one order, never in a cycle:
// the pipeline's groups use the lead id, then a NUL and whatever else tells
// the lead's batches apart ("" for a batch that only reads); coredb's uses
// the CPF, whose advisory lock each of its batches takes first.
//
// If ctx ends first, Send returns ctx's error and b may still be written
// (its callbacks may still run): Group's writes must be idempotent, as
// every stage's are, and a caller reads its callbacks' values only after a
// nil error.
func (g *Group) Send(ctx context.Context, key string, b *pgx.Batch) error {
	sctx := ctx
	if trace.SpanFromContext(ctx).IsRecording() { // no attributes to build otherwise
		sctx = start(ctx, "postgres group batch", attribute.String("db.system.name", "postgresql"),
			attribute.String("db.operation.name", "BATCH"), attribute.Int("db.operation.batch.size", b.Len()))
	}
	p := &grouped{ctx: sctx, key: key, b: b, done: make(chan struct{})}
	var err error
	select {
	case g.in <- p:
		select {
		case <-p.done:
			err = p.err
		case <-ctx.Done():
			err = ctx.Err()
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	end(sctx, err)
	return err
}

func (g *Group) loop() {
	for first := range g.in {
		batch := []*grouped{first}
	more:
		for len(batch) < g.max {
			select {
			case p := <-g.in:
				batch = append(batch, p)
			default:
				break more
			}
		}
		g.flush(batch)
	}
}

func (g *Group) flush(batch []*grouped) {
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	if len(batch) == 1 {
		batch[0].err = g.alone(batch[0])
		return
	}
	slices.SortStableFunc(batch, func(a, b *grouped) int { return cmp.Compare(a.key, b.key) })
	all := &pgx.Batch{}
	for _, p := range batch {
		all.QueuedQueries = append(all.QueuedQueries, fresh(p.b.QueuedQueries)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	err := g.db.SendBatch(ctx, all).Close()
	cancel()
	if err == nil {
		return
	}
	for _, p := range batch {
		p.err = g.alone(p)
	}
}

// alone writes one caller's batch in its own transaction. The shared
// transaction sent copies, so p.b itself is sent here for the first time.
func (g *Group) alone(p *grouped) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), groupTimeout)
	defer cancel()
	return g.db.SendBatch(ctx, p.b).Close()
}

// fresh copies queued queries for the shared batch, leaving the originals
// unsent (pgx keeps a statement description on each query it sends, valid
// only on that connection).
func fresh(qs []*pgx.QueuedQuery) []*pgx.QueuedQuery {
	out := make([]*pgx.QueuedQuery, len(qs))
	for i, q := range qs {
		out[i] = &pgx.QueuedQuery{SQL: q.SQL, Arguments: q.Arguments, Fn: q.Fn}
	}
	return out
}
