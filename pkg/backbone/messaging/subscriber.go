package messaging

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
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
//   - A message is asked for only when one of spec.Workers handlers is free:
//     the subscriber keeps pull requests at the server for exactly its idle
//     handlers (one request covers all the handlers idle at that moment),
//     so every message that arrives is handed to a handler at once. Nothing
//     waits in a client buffer burning its ack wait, and a backlog stays on
//     the server, costing no delivery.
//   - Every request is answered on one long-lived subscription (each request
//     has its own reply subject under it), so a message delivered late, after
//     its request's time was up (a paused or starved process), is still
//     handled at once instead of being dropped and waiting for its ack wait.
//   - While a handler holds a message it is kept in progress (InProgress
//     every AckWait/3), so a handler that waits for a rate budget, for
//     credits or for a slow upstream is never redelivered and uses no
//     delivery. A handler holding a message longer than spec.MaxHold stops
//     being kept alive (a hung handler must not hold a lead forever).
//   - Close stops asking for messages (the subscription is drained, so the
//     server drops the requests still waiting), naks at once any message
//     that came but was not handed over yet, lets handlers in flight finish within the grace
//     period and naks what is still held, so it comes back at once rather
//     than after the ack wait.
type pullSubscriber struct {
	nc      *nats.Conn
	next    string // the consumer's CONSUMER.MSG.NEXT API subject
	spec    ConsumerSpec
	log     zerolog.Logger
	grace   time.Duration
	expires time.Duration // of each pull request at the server
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // handlers
	pumped  chan struct{}  // closed when the pump has stopped
	busy    atomic.Int64   // messages being handled
	wake    chan struct{}  // a handler finished
}

func newPullSubscriber(nc *nats.Conn, cons jetstream.Consumer, spec ConsumerSpec, log zerolog.Logger, grace time.Duration) *pullSubscriber {
	stream, name := events.StreamName, DurableName(spec.Service, spec.Subject)
	if info := cons.CachedInfo(); info != nil {
		stream, name = info.Stream, info.Name
	}
	return &pullSubscriber{nc: nc, next: fmt.Sprintf("%sCONSUMER.MSG.NEXT.%s.%s", jetstream.DefaultAPIPrefix, stream, name),
		spec: spec, log: log, grace: grace, expires: 5 * time.Second,
		closing: make(chan struct{}), pumped: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// Subscribe starts the pump; the topic is the consumer's, fixed at
// construction.
func (s *pullSubscriber) Subscribe(_ context.Context, _ string) (<-chan *message.Message, error) {
	inbox := s.nc.NewInbox()
	// At most one message per requested slot and one status per request
	// are ever in flight: the channel cannot fill.
	msgs := make(chan *nats.Msg, 4*s.spec.Workers+64)
	sub, err := s.nc.ChanSubscribe(inbox+".*", msgs)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go s.pump(sub, msgs, inbox, out)
	go func() {
		<-s.pumped
		s.wg.Wait()
		close(out)
	}()
	return out, nil
}

// Close stops asking for messages and waits for the handlers, which finish
// or nak what they hold within the grace period.
func (s *pullSubscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	<-s.pumped
	s.wg.Wait()
	return nil
}

// minPull is the smallest batch asked for while another request is open.
func (s *pullSubscriber) minPull() int { return max(1, s.spec.Workers/4) }

// pullRequest is one request at the server: its reply subject, how many
// messages it asked for, how many came, and when it is over for sure.
type pullRequest struct {
	reply     string
	want, got int
	deadline  time.Time
}

// pump keeps the server's pull requests equal to the idle handlers and
// hands each arriving message to a handler.
func (s *pullSubscriber) pump(sub *nats.Subscription, msgs chan *nats.Msg, inbox string, out chan<- *message.Message) {
	defer close(s.pumped)
	// Requests in the order they were sent. The server fills a consumer's
	// waiting requests in that order, and messages arrive with their stream
	// subject, not the reply subject: each message is counted against the
	// oldest request still open. Statuses (the end of a request) come on
	// its reply subject.
	var reqs []*pullRequest
	outstanding := 0 // messages asked for and not yet come
	seq := 0
	var notBefore time.Time // after a refusal or a failed request, wait
	pause := 100 * time.Millisecond
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	ended := func(reply string) {
		for i, r := range reqs {
			if r.reply == reply {
				outstanding -= r.want - r.got
				reqs = append(reqs[:i], reqs[i+1:]...)
				return
			}
		}
	}
	for {
		now := time.Now()
		if !now.Before(notBefore) {
			// One request per freed handler would cost a NATS round trip per
			// message under load: while a request is still open, ask again
			// only once a quarter of the handlers are idle.
			if idle := s.spec.Workers - int(s.busy.Load()) - outstanding; idle > 0 && (outstanding == 0 || idle >= s.minPull()) {
				seq++
				reply := inbox + "." + strconv.Itoa(seq)
				body := fmt.Sprintf(`{"batch":%d,"expires":%d}`, idle, s.expires.Nanoseconds())
				if err := s.nc.PublishRequest(s.next, reply, []byte(body)); err != nil {
					s.log.Debug().Err(err).Msg("pull request failed")
					notBefore, pause = now.Add(pause), min(pause*2, 5*time.Second)
				} else {
					// The server answers within expires; a second more covers
					// the way back, then the slots are taken as free again.
					reqs = append(reqs, &pullRequest{reply: reply, want: idle, deadline: now.Add(s.expires + time.Second)})
					outstanding += idle
				}
			}
		}
		select {
		case m := <-msgs:
			if status := m.Header.Get("Status"); status != "" && len(m.Data) == 0 {
				switch status {
				case "100": // heartbeat
				case "404", "408": // no messages, or the request's time was up
					ended(m.Subject)
				default: // 409 (a limit, a leadership change, consumer deleted), 503 (no JetStream)
					ended(m.Subject)
					s.log.Debug().Str("status", status).Str("description", m.Header.Get("Description")).Msg("pull request refused")
					notBefore, pause = time.Now().Add(pause), min(pause*2, 5*time.Second)
				}
				continue
			}
			pause = 100 * time.Millisecond
			if len(reqs) > 0 {
				r := reqs[0]
				r.got++
				outstanding--
				if r.got >= r.want {
					reqs = reqs[1:]
				}
			}
			// Every message is handled at once. One that answers a request
			// already given up (it came late) may briefly exceed Workers:
			// handling it beats dropping it into its ack wait.
			s.busy.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(m, out)
				s.busy.Add(-1)
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}()
		case <-s.wake:
		case <-tick.C:
			for len(reqs) > 0 && time.Now().After(reqs[0].deadline) {
				ended(reqs[0].reply)
			}
		case <-s.closing:
			// Stop: the server forgets the requests of a reply subject
			// nobody listens to. Drain unsubscribes but still takes what
			// the server sent before; the flush's round trip makes sure it
			// is all here. None of it is handed over: back at once.
			_ = sub.Drain()
			_ = s.nc.FlushTimeout(2 * time.Second)
			for {
				select {
				case m := <-msgs:
					if m.Header.Get("Status") == "" || len(m.Data) > 0 {
						_ = nakNow(s.nc, m)
					}
				default:
					return
				}
			}
		}
	}
}

// handle gives m to the router and settles it as the handler decides.
func (s *pullSubscriber) handle(m *nats.Msg, out chan<- *message.Message) {
	msg, err := toWatermill(m)
	if err != nil {
		// Not a message this product wrote: it can never be handled.
		s.log.Error().Err(err).Str("subject", m.Subject).Msg("undecodable message terminated")
		_ = s.nc.Publish(m.Reply, []byte("+TERM undecodable"))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msg.SetContext(ctx)
	select {
	case out <- msg:
	case <-s.closing:
		_ = nakNow(s.nc, m) // never handed over: back at once (a bare nak would follow BackOff)
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
			_ = s.nc.Publish(m.Reply, []byte("+ACK"))
			return
		case <-msg.Nacked():
			delivered, _ := strconv.ParseUint(msg.Metadata.Get(MetaDelivered), 10, 64)
			_ = nakWithDelay(s.nc, m, backoffDelay(s.spec.NakDelays).WaitTime(delivered))
			return
		case <-ticker.C:
			if s.spec.MaxHold <= 0 || time.Since(held) < s.spec.MaxHold {
				_ = s.nc.Publish(m.Reply, []byte("+WPI"))
			}
		case <-closing:
			closing = nil
			grace = time.After(s.grace)
		case <-grace:
			// The handler did not finish in time: give the message back now
			// (a bare nak would wait for the consumer's BackOff) and tell
			// the handler to stop.
			_ = nakNow(s.nc, m)
			cancel()
			s.log.Warn().Str("msg_id", msg.UUID).Msg("handler still running at shutdown; message nak'ed")
			return
		}
	}
}

// nakWithDelay asks for a redelivery after d (as jetstream.Msg.NakWithDelay).
func nakWithDelay(nc *nats.Conn, m *nats.Msg, d time.Duration) error {
	if d <= 0 {
		return nc.Publish(m.Reply, []byte("-NAK"))
	}
	return nc.Publish(m.Reply, []byte(fmt.Sprintf(`-NAK {"delay": %d}`, d.Nanoseconds())))
}

// nakNow gives m back for a redelivery at once.
func nakNow(nc *nats.Conn, m *nats.Msg) error { return nakWithDelay(nc, m, time.Millisecond) }

// toWatermill decodes a delivery as the publisher encoded it (watermill's
// NATS marshaler) and adds the delivery count to the metadata.
func toWatermill(m *nats.Msg) (*message.Message, error) {
	msg, err := (&wmnats.NATSMarshaler{}).Unmarshal(m)
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
