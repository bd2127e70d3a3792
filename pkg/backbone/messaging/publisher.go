package messaging

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

// Metadata keys carried as NATS headers.
const (
	MetaEventType = "event_type"
	MetaDelivered = "lf_delivered"
	MetaStreamSeq = "lf_stream_seq"
)

// Publisher publishes envelopes synchronously: Publish returns only once
// JetStream has stored the event (or rejected it as a duplicate).
type Publisher struct {
	pub message.Publisher
	js  jetstream.JetStream
}

// NewPublisher builds a watermill JetStream publisher on conn. The message
// UUID is the event's deterministic id and is sent as Nats-Msg-Id.
func NewPublisher(conn *nats.Conn, logger watermill.LoggerAdapter) (*Publisher, error) {
	pub, err := wmnats.NewPublisherWithNatsConn(conn, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false, // EnsureStream owns the topology
			TrackMsgId:    true,
		},
	}, logger)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(conn)
	if err != nil {
		return nil, err
	}
	return &Publisher{pub: pub, js: js}, nil
}

// Publish stores env on its subject. Publish failures are transient.
func (p *Publisher) Publish(ctx context.Context, env events.Envelope) error {
	subject, ok := events.SubjectOf(env.Type)
	if !ok {
		return failure.Permanent("publish", fmt.Errorf("unknown event type %q", env.Type))
	}
	payload, err := json.Marshal(env)
	if err != nil {
		return failure.Permanent("publish", err)
	}
	msg := message.NewMessage(env.MsgID(), payload)
	middleware.SetCorrelationID(env.CorrelationID, msg)
	msg.Metadata.Set(MetaEventType, env.Type)
	end := tracePublish(ctx, subject, msg) // span, traceparent header (tracing.go)
	err = p.PublishMessage(subject, msg)
	end(err)
	return err
}

// PublishStored publishes a ready watermill message in the same wire format
// (UUID and metadata as headers, UUID as Nats-Msg-Id), waits for the
// JetStream ack under ctx, and reports whether JetStream already had the id
// (a duplicate within the dedupe window). Operator actions (replays,
// requeues, reposts) use it to tell a resumed action from a new one.
func (p *Publisher) PublishStored(ctx context.Context, subject string, msg *message.Message) (duplicate bool, err error) {
	nm, err := (&wmnats.NATSMarshaler{}).Marshal(subject, msg)
	if err != nil {
		return false, failure.Permanent("publish", err)
	}
	ack, err := p.js.PublishMsg(ctx, nm, jetstream.WithMsgID(msg.UUID), jetstream.WithExpectStream(events.StreamName))
	if err != nil {
		return false, failure.Transient("publish", err)
	}
	return ack.Duplicate, nil
}

// PublishMessage publishes a ready watermill message (dead letters, requeues).
func (p *Publisher) PublishMessage(subject string, msg *message.Message) error {
	if err := p.pub.Publish(subject, msg); err != nil {
		return failure.Transient("publish", err)
	}
	return nil
}
