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
		dl := events.DeadLetter{
			SchemaVersion:   events.SchemaVersion,
			OriginalSubject: m.Metadata.Get(middleware.PoisonedTopicKey),
			OriginalMsgID:   m.UUID,
			Stage:           d.stage,
			Reason:          m.Metadata.Get(middleware.ReasonForPoisonedKey),
			FailedAt:        time.Now().UTC(),
			TraceID:         traceIDOf(m),
		}
		dl.Deliveries, _ = strconv.Atoi(m.Metadata.Get(MetaDelivered))
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
			return err
		}
		// One dead letter per (message, stage): a redelivered poison message
		// is deduplicated by JetStream.
		out := message.NewMessage("dlq:"+events.ID(d.stage, m.UUID), payload)
		middleware.SetCorrelationID(middleware.MessageCorrelationID(m), out)
		continueTrace(m, out)
		out.Metadata.Set(MetaEventType, events.TypeDeadLetter)
		out.Metadata.Set("lf_stage", d.stage)
		if err := d.pub.PublishMessage(events.SubjectDeadLetter, out); err != nil {
			return err
		}
		if d.onDead != nil {
			d.onDead(dl)
		}
	}
	return nil
}

func (d deadLetterPublisher) Close() error { return nil }
