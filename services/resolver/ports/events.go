// Package ports adapts JetStream deliveries to the resolver's use case.
package ports

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/services/resolver/app"
)

// Handlers are the resolver's event handlers.
type Handlers struct {
	Resolver *app.Resolver
}

// LeadReceived validates a lead.received delivery and resolves it. A bad
// event returns a permanent error and is dead-lettered.
func (h Handlers) LeadReceived(ctx context.Context, msg *message.Message) error {
	var in events.LeadReceived
	env, err := events.Decode(msg.Payload, events.TypeReceived, &in)
	if err != nil {
		return err
	}
	return h.Resolver.Handle(ctx, env, in)
}
