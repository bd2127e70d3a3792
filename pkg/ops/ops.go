// Package ops is what operators do to a running pipeline: replay lead
// subjects, inspect and requeue dead letters, read a lead's trace and the
// stream's health. The CLI (cmd/leadflowctl) and ingest's admin API share it,
// so both behave the same way.
//
// Nothing here changes an original event: replays and requeues publish new
// events with new message ids. Only dead letters are ever deleted (after
// their requeue is stored, or on an explicit purge).
package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
)

// Ops runs operator actions on the LEADS stream and the pipeline schema.
type Ops struct {
	JS jetstream.JetStream
	// Pool is needed by replays (runs and pipeline.replays) and traces;
	// nil makes those fail with a clear error while the stream-only
	// actions (dry-run, dlq, status) still work.
	Pool *pgxpool.Pool
	// Now is the clock for "2h ago" selectors; nil = time.Now.
	Now func() time.Time
	// IdleWait bounds how long a scan waits for a message the server said
	// was pending (it may have been deleted meanwhile); 0 = 5 s.
	IdleWait time.Duration
	// Pub stores every event an action publishes (replays, requeues,
	// reposts, the lead.notified of a confirm): the services' own
	// publisher. nil = one built on JS's connection when first needed.
	Pub *messaging.Publisher

	mu sync.Mutex
}

// New returns Ops on a JetStream context and an optional pool.
func New(js jetstream.JetStream, pool *pgxpool.Pool) *Ops { return &Ops{JS: js, Pool: pool} }

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Ops) idle() time.Duration {
	if o.IdleWait > 0 {
		return o.IdleWait
	}
	return 5 * time.Second
}

var errNoDB = errors.New("this action needs Postgres (--db or DATABASE_URL)")

func (o *Ops) needDB(op string) error {
	if o.Pool == nil {
		return failure.Permanent(op, errNoDB)
	}
	return nil
}

func (o *Ops) stream(ctx context.Context) (jetstream.Stream, error) {
	st, err := o.JS.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, failure.Transient("ops.stream", fmt.Errorf("stream %s: %w", events.StreamName, err))
	}
	return st, nil
}

// publisher returns Pub, building it on JS's connection the first time.
func (o *Ops) publisher() (*messaging.Publisher, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Pub != nil {
		return o.Pub, nil
	}
	if o.JS == nil {
		return nil, failure.Permanent("ops.publish", errors.New("this action needs NATS (--nats or NATS_URL)"))
	}
	p, err := messaging.NewPublisher(o.JS.Conn(), watermill.NopLogger{})
	if err != nil {
		return nil, failure.Transient("ops.publish", err)
	}
	o.Pub = p
	return p, nil
}

// publish stores payload on subject through messaging.Publisher, in the
// wire format the services' subscribers read, with msgID as Nats-Msg-Id.
// dup reports a JetStream duplicate. A failure is transient: the msg id
// makes running the action again safe.
func (o *Ops) publish(ctx context.Context, subject, msgID, correlationID, eventType string, payload []byte) (dup bool, err error) {
	pub, err := o.publisher()
	if err != nil {
		return false, err
	}
	m := message.NewMessage(msgID, payload)
	if correlationID != "" {
		middleware.SetCorrelationID(correlationID, m)
	}
	if eventType != "" {
		m.Metadata.Set(messaging.MetaEventType, eventType)
	}
	return pub.PublishStored(ctx, subject, m)
}

// scan reads subject from start (inclusive) to end (inclusive, a stream
// sequence) with an ordered consumer and calls fn per message. The end is
// fixed by the caller before scanning so events published meanwhile (a
// replay's own, live traffic) are not chased.
func (o *Ops) scan(ctx context.Context, st jetstream.Stream, cfg jetstream.OrderedConsumerConfig, end uint64, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	if end == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return failure.Transient("ops.scan", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return failure.Transient("ops.scan", err)
	}
	if info.NumPending == 0 {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return failure.Transient("ops.scan", err)
	}
	defer it.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		nctx, cancel := context.WithTimeout(ctx, o.idle())
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && (errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)) {
			return nil // what was pending is gone (deleted or aged out)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return failure.Transient("ops.scan", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return failure.Transient("ops.scan", err)
		}
		if md.Sequence.Stream > end {
			return nil
		}
		if err := fn(msg, md); err != nil {
			return err
		}
		if md.NumPending == 0 || md.Sequence.Stream >= end {
			return nil
		}
	}
}
