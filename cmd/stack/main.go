// Command stack runs the whole product on one machine: embedded NATS
// JetStream (unless NATS_URL is set), the upstream simulators (unless real
// upstream URLs are set), the four services, and Postgres from DATABASE_URL
// (default: the local server). It prints where to send a webhook.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/buildinfo"
	"github.com/leadflow/leadflow/pkg/config"
	"github.com/leadflow/leadflow/pkg/platform"
	"github.com/leadflow/leadflow/pkg/sim"
)

func main() {
	if buildinfo.PrintIfAsked("stack", os.Args[1:], os.Stdout) {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if env["PORT"] == "" {
		env["PORT"] = "8080"
	}
	// One tracer provider for the whole process (OTEL_* variables): the
	// services' spans share the resource leadflow-stack unless
	// OTEL_SERVICE_NAME says otherwise; span names carry the stage.
	l := config.New()
	tr := platform.LoadTracing(l)
	if err := l.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(2)
	}
	flush, err := platform.SetupTracing(ctx, tr, "stack")
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack: tracing:", err)
		os.Exit(1)
	}
	s, err := stack.Start(ctx, stack.Options{Env: env, Sim: sim.Config{Seed: 1}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
	fmt.Fprint(os.Stderr, banner(s))
	code := 0
	select {
	case <-ctx.Done():
	case name := <-s.Exited():
		fmt.Fprintf(os.Stderr, "stack: %s stopped; shutting down\n", name)
		code = 1
	}
	s.Stop()
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = flush(fctx)
	cancel()
	os.Exit(code)
}

func banner(s *stack.Stack) string {
	e := s.Env
	b := &strings.Builder{}
	fmt.Fprintf(b, "\nleadflow is running (ingest on %s)\n\n", s.IngestURL)
	fmt.Fprintf(b, "Send the contract webhook:\n  curl -s -X POST '%s/api/v1/webhooks/c2s?token=%s' -H 'Content-Type: application/json' \\\n    --data @pkg/contracts/c2s/webhook_on_create_lead.json\n\n", s.IngestURL, e["WEBHOOK_SECRET"])
	fmt.Fprintf(b, "Follow the lead:\n  curl -s -H 'Authorization: Bearer %s' %s/api/v1/leads/5f2c9a7e41b8d3c6a0e1f4b27d9c8e10\n\n", firstKey(e["API_KEYS"]), s.IngestURL)
	if s.Sims != nil {
		fmt.Fprintf(b, "See the message the C2S simulator received:\n  curl -s '%s/_sim/messages?lead=5f2c9a7e41b8d3c6a0e1f4b27d9c8e10'\n\n", e["C2S_BASE_URL"])
	}
	fmt.Fprintf(b, "Trigger like Make.com:\n  curl -s '%s/api/v1/leads/process?id=5f2c9a7e41b8d3c6a0e1f4b27d9c8e10&token=%s&wait=10'\n\nCtrl-C stops everything.\n", s.IngestURL, e["WEBHOOK_SECRET"])
	return b.String()
}

func firstKey(keys string) string {
	k, _, _ := strings.Cut(keys, ",")
	return strings.TrimSpace(k)
}
