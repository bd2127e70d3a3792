package messaging

import (
	"context"
	"testing"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// The publish warm-up goes all the way to JetStream and is refused there:
// the stream stays empty, and the next event is the stream's first.
func TestPublishWarmUpStoresNothing(t *testing.T) {
	r := newRig(t)
	for range 2 {
		if err := r.pub.Warm(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	st, err := r.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 || info.State.LastSeq != 0 {
		t.Fatalf("after the warm-up the stream holds %d messages (last seq %d), want none", info.State.Msgs, info.State.LastSeq)
	}
	if err := r.pub.Publish(ctx, received(t, "lead1", "k1")); err != nil {
		t.Fatal(err)
	}
	if info, _ = st.Info(ctx); info.State.LastSeq != 1 {
		t.Fatalf("the first event got sequence %d, want 1", info.State.LastSeq)
	}
}

// Without the stream there is nothing to warm: the start-up fails.
func TestPublishWarmUpFailsWithoutTheStream(t *testing.T) {
	r := newRig(t)
	if err := r.js.DeleteStream(context.Background(), events.StreamName); err != nil {
		t.Fatal(err)
	}
	if err := r.pub.Warm(); err == nil {
		t.Fatal("Warm succeeded without a stream")
	}
}
