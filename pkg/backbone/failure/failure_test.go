package failure

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestShouldNack(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name string
		err  error
		nack bool
		kind Kind
	}{
		{"transient", Transient("op", base), true, KindTransient},
		{"permanent", Permanent("op", base), false, KindPermanent},
		{"not found", NotFound("op"), false, KindNotFound},
		{"rate limited", RateLimited("op", time.Second, base), true, KindRateLimited},
		{"credits", New(KindCreditsExhausted, "workapi", base), true, KindCreditsExhausted},
		{"unauthorized", New(KindUnauthorized, "workapi", base), false, KindUnauthorized},
		{"uncertain", Uncertain("c2s.create_message", base), true, KindUncertain},
		{"wrapped uncertain", fmt.Errorf("route: %w", Uncertain("gateway.add_message", base)), true, KindUncertain},
		{"wrapped permanent", fmt.Errorf("stage: %w", Permanent("op", base)), false, KindPermanent},
		{"plain error", base, true, KindTransient},
		{"deadline", context.DeadlineExceeded, true, KindTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShouldNack(tc.err); got != tc.nack {
				t.Fatalf("ShouldNack = %v, want %v", got, tc.nack)
			}
			if got := KindOf(tc.err); got != tc.kind {
				t.Fatalf("KindOf = %v, want %v", got, tc.kind)
			}
		})
	}
}

func TestRetryAfterSurvivesWrapping(t *testing.T) {
	err := fmt.Errorf("x: %w", RateLimited("c2s", 7*time.Second, nil))
	if got := RetryAfterOf(err); got != 7*time.Second {
		t.Fatalf("RetryAfterOf = %v", got)
	}
	if RetryAfterOf(errors.New("plain")) != 0 {
		t.Fatal("plain error must have no retry-after")
	}
}
