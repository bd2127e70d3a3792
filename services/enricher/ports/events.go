// Package ports adapts JetStream deliveries to the enricher's use case.
package ports

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/services/enricher/app"
)

// Handlers are the enricher's event handlers.
type Handlers struct {
	Enricher *app.Enricher
}

// LeadResolved validates a lead.resolved delivery and enriches it.
func (h Handlers) LeadResolved(ctx context.Context, msg *message.Message) error {
	var in events.LeadResolved
	env, err := events.Decode(msg.Payload, events.TypeResolved, &in)
	if err != nil {
		return err
	}
	return h.Enricher.Handle(ctx, env, in)
}
