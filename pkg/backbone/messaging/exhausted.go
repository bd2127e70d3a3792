package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// Deliveries can run out without a handler ever answering: the process
// holding the message was killed, hung past MaxHold, or lost its ack, every
// time. JetStream then stops delivering the message and says so only in an
// advisory. That advisory is captured in a stream of its own, so it waits
// for a process even when none is running, and every service turns its
// consumers' advisories into dead letters: no message ends nowhere.
const (
	// ExhaustedStream captures the max-deliveries advisories of LEADS.
	ExhaustedStream = "LEADS_EXHAUSTED"
	advisoryPrefix  = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + events.StreamName + "."
)

// ReasonExhausted is the dead-letter reason of a message whose deliveries
// ran out with no handler answer.
const ReasonExhausted = "deliveries exhausted with no handler answer (the process crashed, hung or lost the ack each time)"

// EnsureExhaustedStream creates or updates the advisory stream.
func EnsureExhaustedStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ExhaustedStream,
		Description: "Max-deliveries advisories of LEADS, until each is dead-lettered",
		Subjects:    []string{advisoryPrefix + "*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", ExhaustedStream, err)
	}
	return nil
}

// watchExhausted dead-letters the messages whose deliveries ran out on
// durable. A dead letter that cannot be published now is retried (nak with
// delay) until it is: it is never lost.
func (r *Router) watchExhausted(ctx context.Context, durable string) error {
	cons, err := r.js.CreateOrUpdateConsumer(ctx, ExhaustedStream, jetstream.ConsumerConfig{
		Durable:       durable + "__exhausted",
		FilterSubject: advisoryPrefix + durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return fmt.Errorf("watch exhausted deliveries of %s: %w", durable, err)
	}
	leads, err := r.js.Stream(ctx, events.StreamName)
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := r.deadLetterExhausted(leads, durable, m.Data()); err != nil {
			r.log.Error().Err(err).Str("consumer", durable).Msg("could not dead-letter an exhausted message; will retry")
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		_ = m.Ack()
	})
	if err != nil {
		return err
	}
	r.stops = append(r.stops, cc.Stop)
	return nil
}

type maxDeliveriesAdvisory struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

func (r *Router) deadLetterExhausted(leads jetstream.Stream, durable string, advisory []byte) error {
	var a maxDeliveriesAdvisory
	if err := json.Unmarshal(advisory, &a); err != nil || a.StreamSeq == 0 {
		r.log.Error().Str("consumer", durable).Msg("unreadable max-deliveries advisory dropped")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := leads.GetMsg(ctx, a.StreamSeq)
	var msg *message.Message
	subject := ""
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		// Aged out of the stream: the dead letter still says which one.
		msg = message.NewMessage(fmt.Sprintf("seq:%d", a.StreamSeq), nil)
	case err != nil:
		return err
	default:
		subject = raw.Subject
		if msg, err = (&wmnats.NATSMarshaler{}).Unmarshal(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data}); err != nil {
			msg = message.NewMessage(raw.Header.Get(nats.MsgIdHdr), raw.Data)
		}
	}
	dl, err := publishDeadLetter(r.pub, durable, subject, msg, ReasonExhausted, a.Deliveries)
	if err != nil {
		return err
	}
	if r.OnDeadLetter != nil {
		r.OnDeadLetter(dl)
	}
	return nil
}
