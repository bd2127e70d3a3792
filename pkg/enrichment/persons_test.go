package enrichment_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/enrichment"
)

// noCredits is a Work API that answers every call "not enough credits".
type noCredits struct{ calls int }

func (a *noCredits) PersonByCPF(context.Context, string) (json.RawMessage, error) {
	a.calls++
	return nil, failure.New(failure.KindCreditsExhausted, "workapi.cpf", errors.New("not enough credits"))
}

// payAlways stores nothing: every Fetch pays.
type payAlways struct{}

func (payAlways) Fetch(ctx context.Context, _ string, _ enrichment.Reuse, pay func(context.Context) (json.RawMessage, error)) (json.RawMessage, bool, error) {
	raw, err := pay(ctx)
	return raw, err == nil, err
}

// Out of credits, Fetch returns at once with a wait that carries
// ENRICH_CREDITS_PAUSE: the router waits it out on the same delivery. A
// wait inside Fetch would run into the try's own deadline and end as a
// plain failure (a nak, a delivery spent), which CI once saw.
func TestOutOfCreditsIsAWaitForTheRouter(t *testing.T) {
	api := &noCredits{}
	paused := 0
	s := &enrichment.Persons{
		API: api, Payloads: payAlways{}, Metrics: enrichment.NewMetrics(prometheus.NewRegistry()), Log: zerolog.Nop(),
		CreditsWait:  time.Hour,
		OnCreditsOut: func(context.Context, time.Duration) { paused++ },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := s.Fetch(ctx, "31860457207", enrichment.Reuse{})
	if ctx.Err() != nil {
		t.Fatal("Fetch waited for credits itself, until the try's deadline")
	}
	if !failure.ShouldWait(err) || !failure.Is(err, failure.KindCreditsExhausted) {
		t.Fatalf("err %v: want a credits wait", err)
	}
	if ra := failure.RetryAfterOf(err); ra != time.Hour {
		t.Fatalf("the wait carries %s, want ENRICH_CREDITS_PAUSE (1h)", ra)
	}
	if api.calls != 1 || paused != 1 {
		t.Fatalf("%d Work API calls and %d pauses, want 1 and 1", api.calls, paused)
	}
}
