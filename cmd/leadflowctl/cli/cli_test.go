package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/cmd/leadflowctl/cli"
	"github.com/leadflow/leadflow/pkg/sim"
)

func run(env map[string]string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errOut,
		Getenv: func(k string) string { return env[k] }})
	return out.String(), errOut.String(), code
}

// TestHelpOnEveryLevel walks the command tree: every command answers
// --help with its usage, and none needs a connection for it.
func TestHelpOnEveryLevel(t *testing.T) {
	paths := [][]string{{}}
	// The tree as the operator sees it.
	for _, p := range [][]string{
		{"replay"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "requeue"}, {"dlq", "purge"},
		{"trace"}, {"status"}, {"uncertain"}, {"uncertain", "list"}, {"uncertain", "confirm"}, {"uncertain", "repost"}, {"c2s"}, {"c2s", "subscribe"}, {"c2s", "unsubscribe"}, {"c2s", "list"},
	} {
		paths = append(paths, p)
	}
	for _, p := range paths {
		out, _, code := run(nil, append(p, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "leadflowctl "+strings.Join(p, " ")) {
			t.Errorf("%v --help: exit %d\n%s", p, code, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"replay"}, // no NATS URL
		{"replay", "--nats", "nats://x", "--bogus"}, // unknown flag
		{"dlq", "requeue", "--nats", "nats://x"},    // neither seq nor --all
		{"dlq", "requeue", "1", "--all", "--nats", "nats://x"},
		{"dlq", "show", "abc", "--nats", "nats://x"},
		{"trace"},
		{"uncertain", "confirm", "onlylead"},                    // needs lead and run
		{"uncertain", "repost", "a", "b", "c"},                  // too many
		{"uncertain", "list"},                                   // no database URL
		{"uncertain", "confirm", "lead", "run"},                 // no NATS URL
		{"c2s", "subscribe", "--url", "https://x.example/hook"}, // no token, no secret
		{"c2s", "list", "--url", "ftp://x.example/hook?token=a"},
		{"c2s", "list", "--url", "https://x.example/hook?token=a", "--actions", "on_delete_lead"},
	} {
		if _, _, code := run(nil, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, cli.ExitUsage)
		}
	}
}

// TestC2SSubscription registers and removes the webhook with the C2S
// simulator, and never prints the webhook secret.
func TestC2SSubscription(t *testing.T) {
	s := sim.New(sim.Config{People: -1})
	urls, err := s.StartLocal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	env := map[string]string{"C2S_BASE_URL": urls.C2SBaseURL, "C2S_TOKEN": s.Config.C2SToken, "WEBHOOK_SECRET": "s3cret"}
	hook := "https://leadflow.example.com/api/v1/webhooks/c2s"

	out, _, code := run(env, "c2s", "subscribe", "--url", hook)
	if code != 0 || strings.Contains(out, "s3cret") {
		t.Fatalf("subscribe exit %d: %s", code, out)
	}
	subs := s.C2S.Subscriptions()
	if len(subs) != 2 {
		t.Fatalf("subscriptions = %+v, want on_create_lead and on_update_lead", subs)
	}
	for _, sub := range subs {
		if sub.HookURL != hook+"?token=s3cret" {
			t.Errorf("hook url = %q, want the secret in the query", sub.HookURL)
		}
	}
	out, _, code = run(env, "c2s", "list", "--url", hook)
	if code != 0 || !strings.Contains(out, "no endpoint") || strings.Contains(out, "s3cret") {
		t.Fatalf("list exit %d: %s", code, out)
	}
	if _, _, code = run(env, "c2s", "unsubscribe", "--url", hook, "--actions", "on_create_lead"); code != 0 {
		t.Fatalf("unsubscribe exit %d", code)
	}
	if subs := s.C2S.Subscriptions(); len(subs) != 1 || subs[0].HookAction != "on_update_lead" {
		t.Fatalf("after unsubscribe: %+v", subs)
	}
	// A wrong token is a failure, not a usage error.
	env["C2S_TOKEN"] = "wrong"
	if _, _, code = run(env, "c2s", "subscribe", "--url", hook); code != cli.ExitFailure {
		t.Fatalf("bad token: exit %d", code)
	}
}
