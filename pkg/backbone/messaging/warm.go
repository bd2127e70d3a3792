package messaging

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// Warm sends one message down the publish path every event takes (the
// watermill marshaler, the JetStream request and its reply) with an
// expected last sequence no stream can have, so JetStream refuses it and
// stores nothing: no consumer ever sees it, no Nats-Msg-Id is kept. The
// first real publish after start-up then costs what the rest do.
func (p *Publisher) Warm() error {
	msg := message.NewMessage("leadflow-warm-up-"+watermill.NewShortUUID(), []byte(`{}`))
	msg.Metadata.Set(MetaEventType, "warm-up")
	msg.Metadata.Set(nats.ExpectedLastSeqHdr, strconv.FormatUint(math.MaxUint64, 10))
	err := p.pub.Publish(events.SubjectReceived, msg)
	var apiErr *nats.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == nats.JSErrCodeStreamWrongLastSequence:
		return nil // refused, as meant
	case err == nil:
		return errors.New("publish warm-up: JetStream stored the warm-up message")
	}
	return fmt.Errorf("publish warm-up: %w", err)
}
