package messaging

import (
	"context"
	"strconv"
)

type deliveryKey struct{}

// WithDelivery puts the delivery count of the message being handled into
// its context (the router does; tests may).
func WithDelivery(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, deliveryKey{}, n)
}

// Redelivered reports whether the message being handled was delivered
// before: a stage whose outcome can differ from one try to the next (an
// upstream answered differently) looks up the outcome it already decided.
func Redelivered(ctx context.Context) bool {
	n, _ := ctx.Value(deliveryKey{}).(int)
	return n > 1
}

func deliveryOf(md string) int {
	n, _ := strconv.Atoi(md)
	return n
}
