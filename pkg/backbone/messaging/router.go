package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/logging"
)

// HandlerFunc processes one delivered event. Its error decides the message's
// fate through failure.ShouldNack: nil acks, transient naks with backoff,
// permanent acks and dead-letters.
type HandlerFunc func(ctx context.Context, msg *message.Message) error

// Router runs a service's consumers.
type Router struct {
	conn    *nats.Conn
	js      jetstream.JetStream
	pub     *Publisher
	router  *message.Router
	service string
	log     zerolog.Logger
	wlog    watermill.LoggerAdapter
	metrics *routerMetrics
	stops   []func() // advisory consumers
	// Grace is how long Close lets handlers in flight finish before their
	// messages are nak'ed back (RUN.md allows 10 s for the whole stop).
	Grace time.Duration
	// OnDeadLetter is told about every dead letter once it is published
	// (the platform marks the run failed in the trace).
	OnDeadLetter func(events.DeadLetter)
}

// NewRouter builds a router for service on conn.
func NewRouter(conn *nats.Conn, js jetstream.JetStream, pub *Publisher, service string, log zerolog.Logger) (*Router, error) {
	wlog := logging.NewWatermill(log.Level(maxLevel(log.GetLevel(), zerolog.InfoLevel)))
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 8 * time.Second}, wlog)
	if err != nil {
		return nil, err
	}
	return &Router{conn: conn, js: js, pub: pub, router: r, service: service, log: log, wlog: wlog,
		metrics: newRouterMetrics(), Grace: 6 * time.Second}, nil
}

func maxLevel(a, b zerolog.Level) zerolog.Level {
	if a > b {
		return a
	}
	return b
}

// HandleOption tunes one consumer.
type HandleOption func(*handleOptions)

type handleOptions struct {
	pauseFor func(error) time.Duration
}

// PauseConsumerOn pauses the consumer server-side for the returned duration
// when a handler error calls for it (e.g. the paid API is out of credits):
// no process keeps paying or hammering while the cause lasts.
func PauseConsumerOn(f func(error) time.Duration) HandleOption {
	return func(o *handleOptions) { o.pauseFor = f }
}

// Handle provisions spec's durable consumer and registers h on it behind the
// one middleware chain every service shares.
func (r *Router) Handle(ctx context.Context, spec ConsumerSpec, h HandlerFunc, opts ...HandleOption) error {
	cons, err := EnsureConsumer(ctx, r.js, spec)
	if err != nil {
		return err
	}
	var o handleOptions
	for _, opt := range opts {
		opt(&o)
	}
	durable := DurableName(spec.Service, spec.Subject)
	sub := newPullSubscriber(r.conn, cons, spec, r.log.With().Str("consumer", durable).Logger(), r.Grace)
	if err := r.watchExhausted(ctx, durable); err != nil {
		return err
	}
	chain, err := r.chain(spec, durable, h, o)
	if err != nil {
		return err
	}
	r.router.AddNoPublisherHandler(durable, spec.Subject, sub, chain)
	return nil
}

// chain composes, outermost first: correlation id -> deadline -> poison
// queue -> observe -> exhaustion -> wait -> panics are permanent ->
// recoverer -> handler. Upstream calls retry in httpx only, and a failed
// handler goes back to JetStream (nak with backoff), so a reader can count
// how often an upstream is called. The one in-process repeat is "wait":
// an outage, a rate limit or exhausted credits is waited out while the
// message is kept in progress, because waiting is not failing.
func (r *Router) chain(spec ConsumerSpec, durable string, h HandlerFunc, o handleOptions) (message.NoPublishHandlerFunc, error) {
	inner := func(msg *message.Message) ([]*message.Message, error) {
		return nil, h(msg.Context(), msg)
	}
	fn := panicsArePermanent(middleware.Recoverer(inner), r.log)
	fn = r.waitNotFail(durable, spec.AckWait*9/10)(fn)
	fn = exhaustion(spec.MaxDeliver)(fn)
	fn = r.observe(spec, durable, o)(fn)
	poison, err := middleware.PoisonQueueWithFilter(deadLetterPublisher{pub: r.pub, stage: durable, onDead: r.OnDeadLetter}, events.SubjectDeadLetter,
		func(err error) bool { return !failure.ShouldNack(err) })
	if err != nil {
		return nil, err
	}
	fn = poison(fn)
	fn = deadline(spec.MaxHold)(fn)
	fn = correlation(fn)
	fn = r.telemetry(spec, durable)(fn) // trace span per delivery (tracing.go)
	return func(msg *message.Message) error {
		_, err := fn(msg)
		return err
	}, nil
}

// observe logs the outcome of each delivery and pauses the consumer when
// asked to.
func (r *Router) observe(spec ConsumerSpec, durable string, o handleOptions) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			r.metrics.duration.WithLabelValues(durable).Observe(time.Since(start).Seconds())
			switch {
			case err == nil:
				r.metrics.handled.WithLabelValues(durable, "ack").Inc()
			case failure.ShouldNack(err):
				r.metrics.handled.WithLabelValues(durable, "nak").Inc()
			default:
				r.metrics.handled.WithLabelValues(durable, "dead_letter").Inc()
			}
			if err == nil {
				return out, nil
			}
			log := logging.Ctx(msg.Context(), r.log).With().Str("consumer", durable).Str("msg_id", msg.UUID).
				Str("delivered", msg.Metadata.Get(MetaDelivered)).Str("error_kind", failure.KindOf(err).String()).Logger()
			if failure.ShouldNack(err) {
				log.Warn().Err(err).Msg("handler failed; will be redelivered")
			} else {
				log.Error().Err(err).Msg("handler failed permanently; dead-lettering")
			}
			if o.pauseFor != nil {
				if d := o.pauseFor(err); d > 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if _, perr := r.js.PauseConsumer(ctx, events.StreamName, durable, time.Now().Add(d)); perr != nil {
						log.Error().Err(perr).Msg("could not pause consumer")
					} else {
						log.Error().Dur("paused_for", d).Msg("consumer paused")
					}
				}
			}
			return out, err
		}
	}
}

// waitNotFail runs the handler again after a pause while its error is a
// wait (failure.ShouldWait), until it succeeds, fails for real, or the
// delivery's deadline (MaxHold) ends. The subscriber keeps the message in
// progress meanwhile, so waiting spends no delivery. Each try has its own
// deadline (attempt, 90 % of the ack wait): a try stuck on I/O ends and is
// judged, while the waits between tries may be long.
func (r *Router) waitNotFail(durable string, attempt time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			base := msg.Context()
			defer msg.SetContext(base)
			pause := time.Second
			for {
				actx, cancel := context.WithTimeout(base, attempt)
				msg.SetContext(actx)
				out, err := h(msg)
				cancel()
				msg.SetContext(base)
				if !failure.ShouldWait(err) {
					return out, err
				}
				wait := pause
				if ra := failure.RetryAfterOf(err); ra > 0 {
					wait = ra
					if !failure.Is(err, failure.KindCreditsExhausted) {
						// An upstream's Retry-After is capped; the credits
						// pause is this product's own setting.
						wait = min(wait, 5*time.Minute)
					}
				} else {
					pause = min(pause*2, time.Minute)
				}
				r.metrics.waits.WithLabelValues(durable, failure.KindOf(err).String()).Inc()
				log := logging.Ctx(base, r.log)
				log.Info().Str("consumer", durable).Str("msg_id", msg.UUID).
					Dur("wait", wait).Str("error_kind", failure.KindOf(err).String()).Msg("waiting, not failing: the message stays in progress")
				t := time.NewTimer(wait)
				select {
				case <-base.Done():
					t.Stop()
					return out, err
				case <-t.C:
				}
			}
		}
	}
}

// exhaustion turns a transient failure on the last allowed delivery into a
// permanent one: JetStream would otherwise stop delivering the message and
// leave it nowhere. This is how MaxDeliver-exhausted messages reach the
// dead-letter subject.
func exhaustion(maxDeliver int) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil && failure.ShouldNack(err) {
				if n, _ := strconv.Atoi(msg.Metadata.Get(MetaDelivered)); n >= maxDeliver {
					return out, failure.Permanent("exhausted", fmt.Errorf("gave up after %d deliveries: %w", n, err))
				}
			}
			return out, err
		}
	}
}

func panicsArePermanent(h message.HandlerFunc, log zerolog.Logger) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var rp middleware.RecoveredPanicError
		if errors.As(err, &rp) {
			log.Error().Str("msg_id", msg.UUID).Str("stack", rp.Stacktrace).Msg("handler panicked")
			return out, failure.Permanent("panic", fmt.Errorf("handler panicked: %v", rp.V))
		}
		return out, err
	}
}

// deadline bounds a delivery's work to maxHold, the time the subscriber
// keeps the message in progress; past it the handler gives up (transient:
// nak with delay) instead of holding the lead forever.
func deadline(maxHold time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if maxHold <= 0 {
				return h(msg)
			}
			ctx, cancel := context.WithTimeout(msg.Context(), maxHold)
			defer cancel()
			msg.SetContext(ctx)
			return h(msg)
		}
	}
}

// correlation puts the message's correlation id (for logs) and its
// delivery count (Redelivered) into its context.
func correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := middleware.MessageCorrelationID(msg)
		if id == "" {
			id = msg.UUID
		}
		ctx := logging.WithCorrelationID(msg.Context(), id)
		msg.SetContext(WithDelivery(ctx, deliveryOf(msg.Metadata.Get(MetaDelivered))))
		return h(msg)
	}
}

// Run runs the consumers until ctx ends or Close is called.
func (r *Router) Run(ctx context.Context) error { return r.router.Run(ctx) }

// Running is closed once every consumer is subscribed.
func (r *Router) Running() chan struct{} { return r.router.Running() }

// Close stops taking messages, lets handlers in flight finish within Grace
// (naking what is still held), and stops the advisory consumers. The
// publisher keeps working until then: it shares no state with the
// subscribers and the connection is drained only after Close.
func (r *Router) Close() error {
	err := r.router.Close()
	for _, stop := range r.stops {
		stop()
	}
	return err
}

// backoffDelay is the nak schedule: the n-th delivery's nak waits the n-th
// step (the last step repeats).
type backoffDelay []time.Duration

func (b backoffDelay) WaitTime(delivered uint64) time.Duration {
	if len(b) == 0 {
		return time.Second
	}
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(b) {
		i = len(b) - 1
	}
	return b[i]
}
