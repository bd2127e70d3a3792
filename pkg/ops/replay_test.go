package ops_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/testinfra/backbone"
)

// bare is a stream and a migrated database without any service consuming:
// what a replay publishes stays where it was put.
func bare(t *testing.T) *ops.Ops {
	t.Helper()
	js, pool := backbone.Start(t)
	return ops.New(js, pool)
}

// put stores an event and returns its stream sequence and time.
func put(t *testing.T, o *ops.Ops, env events.Envelope) (uint64, time.Time) {
	t.Helper()
	b, _ := json.Marshal(env)
	subject, _ := events.SubjectOf(env.Type)
	return putRaw(t, o, subject, env.MsgID(), b)
}

func putRaw(t *testing.T, o *ops.Ops, subject, msgID string, b []byte) (uint64, time.Time) {
	t.Helper()
	ctx := context.Background()
	ack, err := o.JS.Publish(ctx, subject, b, jetstream.WithMsgID(msgID))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := o.JS.Stream(ctx, events.StreamName)
	m, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence, m.Time
}

func totalMessages(t *testing.T, o *ops.Ops) uint64 {
	t.Helper()
	st, _ := o.JS.Stream(context.Background(), events.StreamName)
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func received(t *testing.T, lead string, src events.Source, key string) events.Envelope {
	t.Helper()
	env, err := events.NewReceived(lead, src, key, events.LeadReceived{Action: "on_create_lead",
		Customer: events.Customer{Name: "Helena Duarte", Phone: "5511987650123"}})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestReplaySelectors covers every selector and --dry-run, and checks what a
// real replay publishes.
func TestReplaySelectors(t *testing.T) {
	o := bare(t)
	ctx := context.Background()
	// Batch A (webhooks), then batch B: another source, a later event of
	// L1, an earlier replay, a malformed message, and a resolved event.
	seq1, _ := put(t, o, received(t, "L1", events.SourceWebhook, "a"))
	seq2, _ := put(t, o, received(t, "L2", events.SourceWebhook, "a"))
	seq3, tA := put(t, o, received(t, "L3", events.SourceWebhook, "a"))
	_, tB := put(t, o, received(t, "L4", events.SourceMake, "b"))
	put(t, o, received(t, "L5", events.SourceAPI, "b"))
	put(t, o, received(t, "L1", events.SourceWebhook, "b"))
	old := ops.Replayed(received(t, "L6", events.SourceWebhook, "c"), "rp-old", false, false, time.Now())
	put(t, o, old)
	putRaw(t, o, events.SubjectReceived, "garbage", []byte("not json"))
	parent := received(t, "L2", events.SourceWebhook, "a")
	res, _ := events.New(events.TypeResolved, &parent, events.LeadResolved{Persons: []events.ResolvedPerson{{CPF: "12345678909", Role: events.RolePhone}}})
	put(t, o, res)
	if !tB.After(tA) {
		t.Fatalf("stream times do not increase: %v then %v", tA, tB)
	}
	rfc := func(tm time.Time) string { return tm.Format(time.RFC3339Nano) }
	before := totalMessages(t, o)
	recv := streamMessages(t, o, events.SubjectReceived)

	cases := []struct {
		name     string
		req      ops.ReplayRequest
		want     []string // leads in replay order
		selected int
	}{
		{"everything but replays", ops.ReplayRequest{}, []string{"L2", "L3", "L4", "L5", "L1"}, 7},
		{"since a duration ago", ops.ReplayRequest{Since: "2h"}, []string{"L2", "L3", "L4", "L5", "L1"}, 7},
		{"since a time", ops.ReplayRequest{Since: rfc(tB)}, []string{"L4", "L5", "L1"}, 4},
		{"until a time", ops.ReplayRequest{Until: rfc(tA)}, []string{"L1", "L2", "L3"}, 3},
		{"until long ago", ops.ReplayRequest{Until: "1h"}, nil, 0},
		{"sequence range", ops.ReplayRequest{FromSeq: seq2, ToSeq: seq3}, []string{"L2", "L3"}, 2},
		{"from a sequence", ops.ReplayRequest{FromSeq: seq1 + 3}, []string{"L4", "L5", "L1"}, 4},
		{"one lead, latest event", ops.ReplayRequest{Leads: []string{"L1"}}, []string{"L1"}, 2},
		{"two leads", ops.ReplayRequest{Leads: []string{"L3", "L4"}}, []string{"L3", "L4"}, 2},
		{"source make", ops.ReplayRequest{Sources: []string{"make"}}, []string{"L4"}, 1},
		{"sources api and make", ops.ReplayRequest{Sources: []string{"api", "make"}}, []string{"L4", "L5"}, 2},
		{"source replay", ops.ReplayRequest{Sources: []string{"replay"}}, []string{"L6"}, 1},
		{"another subject", ops.ReplayRequest{Subject: events.SubjectResolved}, []string{"L2"}, 1},
		{"nothing on the subject", ops.ReplayRequest{Subject: events.SubjectEnriched}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.DryRun = true
			sum, err := o.Replay(ctx, c.req, ops.ReplayHooks{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sum.Leads, c.want) || sum.ToPublish != len(c.want) || sum.Selected != c.selected || sum.Published != 0 {
				t.Fatalf("dry run = %+v, want leads %v of %d selected", sum, c.want, c.selected)
			}
		})
	}
	if after := totalMessages(t, o); after != before {
		t.Fatalf("dry runs published %d messages", after-before)
	}

	// A real replay publishes new events and starts their runs.
	sum, err := o.Replay(ctx, ops.ReplayRequest{Leads: []string{"L1", "L4"}, Refresh: true}, ops.ReplayHooks{})
	if err != nil || sum.Published != 2 || sum.Skipped != 1 || sum.Reasons[ops.SkipSuperseded] != 1 {
		t.Fatalf("replay = %+v, %v; want 2 published, 1 superseded", sum, err)
	}
	if after := streamMessages(t, o, events.SubjectReceived); after != recv+2 {
		t.Fatalf("received subject holds %d, want %d", after, recv+2)
	}
	var n int
	if err := o.Pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.lead_runs WHERE replay_id = $1 AND source = 'replay'`, sum.ReplayID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d replay runs (%v), want 2", n, err)
	}
	// The published events are replays of the originals.
	dry, err := o.Replay(ctx, ops.ReplayRequest{Sources: []string{"replay"}, Since: rfc(tB), DryRun: true}, ops.ReplayHooks{})
	if err != nil || !slices.Equal(dry.Leads, []string{"L6", "L4", "L1"}) {
		t.Fatalf("replayed events: %+v, %v", dry, err)
	}
	// Resuming the same replay id publishes nothing twice.
	again, err := o.Replay(ctx, ops.ReplayRequest{Leads: []string{"L1", "L4"}, ReplayID: sum.ReplayID}, ops.ReplayHooks{})
	if err != nil || again.Published != 0 || again.Reasons[ops.SkipDuplicate] != 2 {
		t.Fatalf("resume = %+v, %v; want 2 duplicates", again, err)
	}
	if after := streamMessages(t, o, events.SubjectReceived); after != recv+2 {
		t.Fatalf("resume published: received subject holds %d", after)
	}
	// Once a run has moved on, a resume skips it even outside JetStream's
	// dedupe window.
	if _, err := o.Pool.Exec(ctx, `UPDATE pipeline.lead_runs SET status = 'notified' WHERE replay_id = $1`, sum.ReplayID); err != nil {
		t.Fatal(err)
	}
	again, err = o.Replay(ctx, ops.ReplayRequest{Leads: []string{"L1", "L4"}, ReplayID: sum.ReplayID}, ops.ReplayHooks{})
	if err != nil || again.Reasons[ops.SkipReplayed] != 2 {
		t.Fatalf("resume after the runs moved on = %+v, %v", again, err)
	}
}

func TestReplayRejectsBadRequests(t *testing.T) {
	o := &ops.Ops{Now: func() time.Time { return time.Date(2025, 11, 21, 12, 0, 0, 0, time.UTC) }}
	for _, req := range []ops.ReplayRequest{
		{Subject: "leads.dlq"},
		{Subject: "leads.>"},
		{Since: "yesterday"},
		{Since: "-2h"},
		{Since: "1h", Until: "2h"},
		{FromSeq: 9, ToSeq: 3},
		{Leads: []string{"../etc"}},
		{Sources: []string{"kafka"}},
		{ReplayID: "has spaces"},
		{Rate: -1},
	} {
		_, err := o.Replay(context.Background(), req, ops.ReplayHooks{})
		if !failure.Is(err, failure.KindPermanent) {
			t.Errorf("%+v: err = %v, want a permanent (400) error", req, err)
		}
	}
	// Without a database only a dry run can go on.
	if _, err := o.Replay(context.Background(), ops.ReplayRequest{}, ops.ReplayHooks{}); err == nil || !strings.Contains(err.Error(), "Postgres") {
		t.Errorf("replay without a database: %v", err)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2025, 11, 21, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"2h":                        now.Add(-2 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
		"3d":                        now.Add(-72 * time.Hour),
		"2025-11-20T10:00:00Z":      time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC),
		"2025-11-20T10:00:00-03:00": time.Date(2025, 11, 20, 13, 0, 0, 0, time.UTC),
	} {
		got, err := ops.ParseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "0s", "-1h", "0d", "2025-13-01"} {
		if _, err := ops.ParseWhen(bad, now); err == nil {
			t.Errorf("ParseWhen(%q) accepted", bad)
		}
	}
}

func TestReplayedEvent(t *testing.T) {
	orig := received(t, "L1", events.SourceWebhook, "k")
	now := time.Now()
	a := ops.Replayed(orig, "rp-1", true, false, now)
	if a.Source != events.SourceReplay || a.ReplayID != "rp-1" || !a.Refresh || a.Notify ||
		a.RunID != events.ID("replay", "rp-1", orig.EventID) || a.EventID != a.RunID || string(a.Data) != string(orig.Data) {
		t.Fatalf("replayed = %+v", a)
	}
	if _, err := events.Decode(mustJSON(t, a), events.TypeReceived, nil); err != nil {
		t.Fatalf("a replayed event must decode: %v", err)
	}
	if b := ops.Replayed(orig, "rp-1", true, false, now.Add(time.Hour)); b.MsgID() != a.MsgID() {
		t.Fatal("the same replay id must give the same message id (dedupe)")
	}
	if c := ops.Replayed(orig, "rp-2", true, false, now); c.RunID == a.RunID {
		t.Fatal("another replay id must give another run")
	}
	parent := orig
	res, _ := events.New(events.TypeResolved, &parent, events.LeadResolved{Persons: []events.ResolvedPerson{{CPF: "12345678909", Role: events.RoleBoth}}})
	r := ops.Replayed(res, "rp-1", false, false, now)
	if r.EventID != events.ID(events.TypeResolved, r.RunID) || r.Type != events.TypeResolved {
		t.Fatalf("replayed resolved = %+v", r)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMask(t *testing.T) {
	doc := map[string]any{
		"stage":  "enricher__leads_resolved",
		"reason": "lookup of 123.456.789-09 for helena@example.com failed",
		"event": map[string]any{
			"lead_id": "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10",
			"data": map[string]any{
				"customer": map[string]any{"name": "Helena Duarte", "phone": "5511987650123", "email": "helena@example.com"},
				"persons":  []any{map[string]any{"cpf": "12345678909", "payload": map[string]any{"nome": "HELENA"}}},
			},
		},
		"raw_base64": "eyJjcGYiOiIxMjM0NTY3ODkwOSJ9",
	}
	b, _ := json.Marshal(ops.Mask(doc))
	out := string(b)
	for _, secret := range []string{"Helena", "HELENA", "5511987650123", "helena@example.com", "12345678909", "123.456.789-09", "eyJjcGYi"} {
		if strings.Contains(out, secret) {
			t.Errorf("masked output leaks %q: %s", secret, out)
		}
	}
	for _, kept := range []string{"5f2c9a7e41b8d3c6a0e1f4b27d9c8e10", "enricher__leads_resolved", "H. D.", "*********0123"} {
		if !strings.Contains(out, kept) {
			t.Errorf("masked output lost %q: %s", kept, out)
		}
	}
}
