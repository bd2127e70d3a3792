package messaging

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/domain/lead"
)

// deadLetterPublisher receives what watermill's PoisonQueue middleware
// publishes (the original message plus reason metadata) and turns it into an
// events.DeadLetter envelope on leads.dlq.
type deadLetterPublisher struct {
	pub    *Publisher
	stage  string
	onDead func(events.DeadLetter)
}

func (d deadLetterPublisher) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		deliveries, _ := strconv.Atoi(m.Metadata.Get(MetaDelivered))
		dl, err := publishDeadLetter(d.pub, d.stage, m.Metadata.Get(middleware.PoisonedTopicKey), m,
			m.Metadata.Get(middleware.ReasonForPoisonedKey), deliveries)
		if err != nil {
			return err
		}
		if d.onDead != nil {
			d.onDead(dl)
		}
	}
	return nil
}

func (d deadLetterPublisher) Close() error { return nil }

// publishDeadLetter publishes the one dead letter of (message, stage) for
// every path that ends a message: a permanent failure, a last delivery that
// failed, or deliveries that ran out with no answer. Its id is derived from
// the stage and the original message id, so a repeat by another path or
// replica is deduplicated by JetStream.
func publishDeadLetter(pub *Publisher, stage, subject string, m *message.Message, reason string, deliveries int) (events.DeadLetter, error) {
	dl := events.DeadLetter{
		SchemaVersion:   events.SchemaVersion,
		OriginalSubject: subject,
		OriginalMsgID:   m.UUID,
		Stage:           stage,
		Reason:          reason,
		FailedAt:        time.Now().UTC(),
		Deliveries:      deliveries,
		TraceID:         traceIDOf(m),
	}
	if json.Valid(m.Payload) {
		dl.Event = json.RawMessage(m.Payload)
		var probe struct {
			LeadID string `json:"lead_id"`
		}
		if json.Unmarshal(m.Payload, &probe) == nil && lead.ValidID(probe.LeadID) {
			dl.LeadID = probe.LeadID
		}
	} else {
		dl.RawBase64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	payload, err := json.Marshal(dl)
	if err != nil {
		return dl, err
	}
	out := message.NewMessage("dlq:"+events.ID(stage, m.UUID), payload)
	middleware.SetCorrelationID(middleware.MessageCorrelationID(m), out)
	continueTrace(m, out)
	out.Metadata.Set(MetaEventType, events.TypeDeadLetter)
	out.Metadata.Set("lf_stage", stage)
	return dl, pub.PublishMessage(events.SubjectDeadLetter, out)
}
