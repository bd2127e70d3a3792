package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
)

func TestRunIDsAreDeterministicAndFreeOfPersonalData(t *testing.T) {
	data := LeadReceived{Action: "on_create_lead", Customer: Customer{Phone: "5511987650123", Email: "a@b.c"}}
	a, _ := NewReceived("5f2c9a7e41b8d3c6a0e1f4b27d9c8e10", SourceWebhook, "2025-11-21T13:30:00Z", data)
	b, _ := NewReceived("5f2c9a7e41b8d3c6a0e1f4b27d9c8e10", SourceWebhook, "2025-11-21T13:30:00Z", data)
	c, _ := NewReceived("5f2c9a7e41b8d3c6a0e1f4b27d9c8e10", SourceWebhook, "2025-11-21T14:00:00Z", data)
	if a.EventID != b.EventID || a.MsgID() != b.MsgID() {
		t.Fatal("same trigger must give the same ids")
	}
	if a.EventID == c.EventID {
		t.Fatal("a new updated_at must start a new run")
	}
	if strings.Contains(a.MsgID(), "5511987650123") || strings.Contains(a.MsgID(), "a@b.c") {
		t.Fatal("msg id carries personal data")
	}
	r1, _ := New(TypeResolved, &a, LeadResolved{Persons: []ResolvedPerson{{CPF: "31860457207", Role: RoleBoth}}})
	r2, _ := New(TypeResolved, &a, LeadResolved{Persons: []ResolvedPerson{{CPF: "31860457207", Role: RoleBoth}}})
	if r1.EventID != r2.EventID || r1.RunID != a.RunID || r1.EventID == a.EventID {
		t.Fatal("downstream ids must derive from the run")
	}
}

func TestDecodeValidates(t *testing.T) {
	good, _ := NewReceived("lead1", SourceMake, "run", LeadReceived{Action: "trigger"})
	goodJSON, _ := json.Marshal(good)
	var lr LeadReceived
	if _, err := Decode(goodJSON, TypeReceived, &lr); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	mutate := func(f func(*Envelope)) []byte {
		e := good
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	cases := map[string][]byte{
		"not json":      []byte("{"),
		"wrong type":    mutate(func(e *Envelope) { e.Type = TypeEnriched }),
		"bad lead id":   mutate(func(e *Envelope) { e.LeadID = "../x" }),
		"no event id":   mutate(func(e *Envelope) { e.EventID = "" }),
		"new version":   mutate(func(e *Envelope) { e.SchemaVersion = 2 }),
		"bad source":    mutate(func(e *Envelope) { e.Source = "fax" }),
		"replay w/o id": mutate(func(e *Envelope) { e.Source = SourceReplay }),
		"no data":       mutate(func(e *Envelope) { e.Data = nil }),
		"bad data":      mutate(func(e *Envelope) { e.Data = json.RawMessage(`[1]`) }),
	}
	for name, b := range cases {
		_, err := Decode(b, TypeReceived, &lr)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
		if failure.ShouldNack(err) {
			t.Errorf("%s: an invalid event must be dead-lettered, not retried", name)
		}
	}
	var res LeadResolved
	bad, _ := New(TypeResolved, &good, LeadResolved{})
	b, _ := json.Marshal(bad)
	if _, err := Decode(b, TypeResolved, &res); !errors.Is(err, ErrInvalid) {
		t.Fatal("resolved without persons must be invalid")
	}

	// An enriched person carries its summary or, in an event published
	// before summaries, the whole payload; never neither.
	for name, p := range map[string]EnrichedPerson{
		"summary": {CPF: "12345678909", Role: RolePhone, Person: json.RawMessage(`{"n":"ANA"}`)},
		"payload": {CPF: "12345678909", Role: RolePhone, Payload: json.RawMessage(`{"DadosBasicos":{}}`)},
		"neither": {CPF: "12345678909", Role: RolePhone},
	} {
		env, _ := New(TypeEnriched, &good, LeadEnriched{Persons: []EnrichedPerson{p}})
		b, _ := json.Marshal(env)
		var enr LeadEnriched
		_, err := Decode(b, TypeEnriched, &enr)
		if wantValid := name != "neither"; (err == nil) != wantValid {
			t.Errorf("enriched person with %s: err = %v", name, err)
		}
	}
}

func TestShouldNotify(t *testing.T) {
	live := Envelope{Source: SourceWebhook}
	replay := Envelope{Source: SourceReplay, ReplayID: "r"}
	replayNotify := Envelope{Source: SourceReplay, ReplayID: "r", Notify: true}
	if !live.ShouldNotify() || replay.ShouldNotify() || !replayNotify.ShouldNotify() {
		t.Fatal("notify rules broken")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := NewReceived("lead1", SourceMake, "run", LeadReceived{Action: "trigger"})
	b, _ := json.Marshal(good)
	f.Add(b)
	f.Add([]byte(`{"event_id":"x"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var lr LeadReceived
		_, err := Decode(in, TypeReceived, &lr)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error not classified: %v", err)
		}
	})
}

// TestMarshalAsJSON: Marshal's output is json.Marshal's, for envelopes New
// built (Data copied in) and others.
func TestMarshalAsJSON(t *testing.T) {
	parent, err := NewReceived("5f2c9a7e41b8d3c6a0e1f4b27d9c8e10", SourceWebhook, "k", LeadReceived{Action: "on_create_lead"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := New(TypeEnriched, &parent, LeadEnriched{Persons: []EnrichedPerson{{CPF: "12345678909", Role: RolePhone,
		Payload: json.RawMessage(`{"DadosBasicos": {"nome": "Ana"}}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	other := next
	other.Data = json.RawMessage(`{ "a" : 1 }`)
	for _, e := range []Envelope{parent, next, other, {}} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(e)
		if err != nil || string(got) != string(want) {
			t.Fatalf("Marshal = %s, %v; want %s", got, err, want)
		}
	}
}
