package messaging

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// pullSubscriber is the watermill Subscriber of one durable pull consumer.
//
//   - A message is taken only when one of spec.Workers handlers is free: each
//     worker asks the server for one message at a time, so nothing waits in
//     a client buffer burning its ack wait, and a backlog stays on the
//     server, costing no delivery.
//   - While a handler holds a message it is kept in progress (InProgress
//     every AckWait/3), so a handler that waits for a rate budget, for
//     credits or for a slow upstream is never redelivered and uses no
//     delivery. A handler holding a message longer than spec.MaxHold stops
//     being kept alive (a hung handler must not hold a lead forever).
//   - Close stops taking messages, lets handlers in flight finish within the
//     grace period and naks what is still held, so it comes back at once
//     rather than after the ack wait.
type pullSubscriber struct {
	cons    jetstream.Consumer
	spec    ConsumerSpec
	log     zerolog.Logger
	grace   time.Duration
	closing chan struct{}
	stopCtx context.Context // cancelled by Close: ends pending fetches
	stop    context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup // workers
}

func newPullSubscriber(cons jetstream.Consumer, spec ConsumerSpec, log zerolog.Logger, grace time.Duration) *pullSubscriber {
	ctx, stop := context.WithCancel(context.Background())
	return &pullSubscriber{cons: cons, spec: spec, log: log, grace: grace, closing: make(chan struct{}), stopCtx: ctx, stop: stop}
}

// Subscribe starts the workers; the topic is the consumer's, fixed at
// construction.
func (s *pullSubscriber) Subscribe(_ context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	for i := 0; i < s.spec.Workers; i++ {
		s.wg.Add(1)
		go s.work(out)
	}
	go func() {
		s.wg.Wait()
		close(out)
	}()
	return out, nil
}

// Close stops fetching and waits for the workers, which finish or nak what
// they hold within the grace period.
func (s *pullSubscriber) Close() error {
	s.once.Do(func() { close(s.closing); s.stop() })
	s.wg.Wait()
	return nil
}

func (s *pullSubscriber) stopped() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// work is one handler slot: fetch one message, hand it over, wait for its
// fate, repeat.
func (s *pullSubscriber) work(out chan<- *message.Message) {
	defer s.wg.Done()
	pause := 100 * time.Millisecond
	for !s.stopped() {
		fctx, cancel := context.WithTimeout(s.stopCtx, 5*time.Second)
		m, err := s.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if s.stopped() {
				return
			}
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				// The server is away (restart, failover): wait and ask again.
				s.log.Debug().Err(err).Msg("fetch failed")
				select {
				case <-s.closing:
					return
				case <-time.After(pause):
				}
				pause = min(pause*2, 5*time.Second)
			}
			continue
		}
		pause = 100 * time.Millisecond
		s.handle(m, out)
	}
}

// handle gives m to the router and settles it as the handler decides.
func (s *pullSubscriber) handle(m jetstream.Msg, out chan<- *message.Message) {
	msg, err := toWatermill(m)
	if err != nil {
		// Not a message this product wrote: it can never be handled.
		s.log.Error().Err(err).Str("subject", m.Subject()).Msg("undecodable message terminated")
		_ = m.TermWithReason("undecodable")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msg.SetContext(ctx)
	select {
	case out <- msg:
	case <-s.closing:
		_ = m.NakWithDelay(time.Millisecond) // never handed over: back at once (a bare nak would follow BackOff)
		return
	}
	beat := max(s.spec.AckWait/3, 100*time.Millisecond)
	ticker := time.NewTicker(beat)
	defer ticker.Stop()
	held := time.Now()
	var grace <-chan time.Time
	closing := s.closing
	for {
		select {
		case <-msg.Acked():
			_ = m.Ack()
			return
		case <-msg.Nacked():
			delivered, _ := strconv.ParseUint(msg.Metadata.Get(MetaDelivered), 10, 64)
			_ = m.NakWithDelay(backoffDelay(s.spec.NakDelays).WaitTime(delivered))
			return
		case <-ticker.C:
			if s.spec.MaxHold <= 0 || time.Since(held) < s.spec.MaxHold {
				_ = m.InProgress()
			}
		case <-closing:
			closing = nil
			grace = time.After(s.grace)
		case <-grace:
			// The handler did not finish in time: give the message back now
			// (a bare nak would wait for the consumer's BackOff) and tell
			// the handler to stop.
			_ = m.NakWithDelay(time.Millisecond)
			cancel()
			s.log.Warn().Str("msg_id", msg.UUID).Msg("handler still running at shutdown; message nak'ed")
			return
		}
	}
}

// toWatermill decodes a delivery as the publisher encoded it (watermill's
// NATS marshaler) and adds the delivery count to the metadata.
func toWatermill(m jetstream.Msg) (*message.Message, error) {
	msg, err := (&wmnats.NATSMarshaler{}).Unmarshal(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		return nil, err
	}
	if md, err := m.Metadata(); err == nil {
		msg.Metadata.Set(MetaDelivered, strconv.FormatUint(md.NumDelivered, 10))
		msg.Metadata.Set(MetaStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	}
	return msg, nil
}

// ensurePullConsumer creates or updates spec's durable pull consumer. A
// durable left over as a push consumer (older releases) cannot be turned
// into a pull one: it is replaced by a pull consumer that starts after the
// old one's ack floor, so nothing acked is redone and nothing unacked lost.
func ensurePullConsumer(ctx context.Context, js jetstream.JetStream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if old, err := js.Consumer(ctx, events.StreamName, cfg.Durable); err == nil {
		if info := old.CachedInfo(); info != nil && info.Config.DeliverSubject != "" {
			floor := info.AckFloor.Stream
			if err := js.DeleteConsumer(ctx, events.StreamName, cfg.Durable); err != nil {
				return nil, err
			}
			if floor > 0 {
				cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
				cfg.OptStartSeq = floor + 1
			}
			return js.CreateConsumer(ctx, events.StreamName, cfg)
		}
	}
	return js.CreateOrUpdateConsumer(ctx, events.StreamName, cfg)
}
