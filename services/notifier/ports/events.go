// Package ports adapts JetStream deliveries to the notifier's use case.
package ports

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/services/notifier/app"
)

// Handlers are the notifier's event handlers.
type Handlers struct {
	Notifier *app.Notifier
}

// LeadEnriched validates a lead.enriched delivery and notifies.
func (h Handlers) LeadEnriched(ctx context.Context, msg *message.Message) error {
	var in events.LeadEnriched
	env, err := events.Decode(msg.Payload, events.TypeEnriched, &in)
	if err != nil {
		return err
	}
	return h.Notifier.Enriched(ctx, env, in)
}

// LeadUnresolved validates a lead.unresolved delivery and notifies.
func (h Handlers) LeadUnresolved(ctx context.Context, msg *message.Message) error {
	var in events.LeadUnresolved
	env, err := events.Decode(msg.Payload, events.TypeUnresolved, &in)
	if err != nil {
		return err
	}
	return h.Notifier.Unresolved(ctx, env, in)
}
