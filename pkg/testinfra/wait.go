package testinfra

import (
	"testing"
	"time"
)

// WaitFor polls cond every 5 ms until it holds, and fails the test after
// ten seconds: a state to reach, not a time to pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
