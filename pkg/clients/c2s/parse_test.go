package c2s

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/lead"
)

var helena = Customer{Name: "Helena Duarte", Email: "helena.duarte@example.com", Phone: "5511987650123"}

const leadID = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"

func TestParseLead(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *Lead
		err  error
	}{
		{"contract", string(contracts.Read("c2s/lead.json")), &Lead{ID: leadID, Customer: helena,
			UpdatedAt: "2025-11-14T10:21:35.000-03:00"}, nil},
		{"nulls and numbers", `{"data":{"id":"abc","attributes":{"customer":{"name":null,"email":7,"phone":5511987650123,"phone2":true},"updated_at":null}}}`,
			&Lead{ID: "abc", Customer: Customer{Email: "7", Phone: "5511987650123"}}, nil},
		{"customer is a string", `{"data":{"id":"abc","attributes":{"customer":"x"}}}`, &Lead{ID: "abc"}, nil},
		{"attributes missing", `{"data":{"id":"abc"}}`, &Lead{ID: "abc"}, nil},
		{"numeric id", `{"data":{"id":48213377}}`, &Lead{ID: "48213377"}, nil},
		{"messages both places", `{"data":{"id":"abc","attributes":{"messages":[{"message":"a"},{"body":"b"},{"x":1},null,"c"]}},"messages":[{"body":"d"}]}`,
			&Lead{ID: "abc", Messages: []string{"a", "b", "c", "d"}, HasMessages: true}, nil},
		{"empty messages list", `{"data":{"id":"abc","attributes":{"messages":[]}}}`, &Lead{ID: "abc", HasMessages: true}, nil},
		{"top-level messages only", `{"data":{"id":"abc"},"messages":[]}`, &Lead{ID: "abc", HasMessages: true}, nil},
		{"messages null", `{"data":{"id":"abc","attributes":{"messages":null}}}`, &Lead{ID: "abc"}, nil},
		{"messages wrong type", `{"data":{"id":"abc","attributes":{"messages":{"message":"a"}}}}`, &Lead{ID: "abc"}, nil},
		{"no id", `{"data":{"attributes":{}}}`, nil, ErrNoLeadID},
		{"data null", `{"data":null}`, nil, ErrNoLeadID},
		{"array", `[]`, nil, ErrNoLeadID},
		{"html", `<html>502</html>`, nil, ErrNotJSON},
		{"trailing garbage", `{"data":{"id":"abc"}} x`, nil, ErrNotJSON},
		{"empty", ``, nil, ErrNotJSON},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLead([]byte(tc.body))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseWebhookContracts(t *testing.T) {
	otavio := Customer{Name: "Otavio Prado", Email: "otavio.prado@example.com", Phone: "5511912340987"}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	cases := []struct {
		file string
		want []WebhookEvent
	}{
		{"c2s/webhook_on_create_lead.json", []WebhookEvent{{LeadID: leadID, Action: "on_create_lead", UpdatedAtRaw: "2025-11-21T13:30:00Z",
			UpdatedAt: utc("2025-11-21T13:30:00Z"), Customer: helena, HasCustomer: true}}},
		{"c2s/webhook_on_update_lead.json", []WebhookEvent{{LeadID: leadID, Action: "on_update_lead", UpdatedAtRaw: "2025-11-21T14:05:12.481Z",
			UpdatedAt: utc("2025-11-21T14:05:12.481Z"), Customer: helena, HasCustomer: true}}},
		{"c2s/webhook_on_close_lead.json", []WebhookEvent{{LeadID: leadID, Action: "on_close_lead", UpdatedAtRaw: "2025-12-01 17:42:08.000 -0300",
			UpdatedAt: utc("2025-12-01T20:42:08Z"), Customer: helena, HasCustomer: true}}},
		{"c2s/webhook_envelope_on_create_lead.json", []WebhookEvent{{LeadID: leadID, Action: "on_create_lead", UpdatedAtRaw: "2025-11-21T13:30:00.000Z",
			UpdatedAt: utc("2025-11-21T13:30:00Z"), Customer: helena, HasCustomer: true}}},
		{"c2s/webhook_array.json", []WebhookEvent{
			{LeadID: leadID, Action: "on_update_lead", UpdatedAtRaw: "2025-11-21T15:00:00Z", UpdatedAt: utc("2025-11-21T15:00:00Z"), Customer: helena, HasCustomer: true},
			{LeadID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", Action: "on_create_lead", UpdatedAtRaw: "2025-11-21 15:00:03.250",
				UpdatedAt: utc("2025-11-21T15:00:03.25Z"), Customer: otavio, HasCustomer: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseWebhook(contracts.Read(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseWebhookShapes(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		ids    []string
		action string
		hasCus bool
		err    error
	}{
		{"data envelope", `{"hook_action":"on_update_lead","data":{"type":"lead","id":"abc123","attributes":{"updated_at":"2025-11-21T13:30:00Z","customer":{"phone":"5511987650123"}}},"timestamp":"2025-11-21T13:30:01Z"}`,
			[]string{"abc123"}, "on_update_lead", true, nil},
		{"no customer", `{"id":"abc","hook_action":"on_create_lead","attributes":{"updated_at":"bad"}}`, []string{"abc"}, "on_create_lead", false, nil},
		{"empty customer", `{"id":"abc","attributes":{"customer":{"name":"","phone":null}}}`, []string{"abc"}, "", false, nil},
		{"numeric id", `{"id":123,"hook_action":"on_create_lead"}`, []string{"123"}, "on_create_lead", false, nil},
		{"array skips junk", `[1,null,{"id":"../x"},{"id":"ok1","hook_action":"on_close_lead"}]`, []string{"ok1"}, "on_close_lead", false, nil},
		{"lead list envelope", `{"hook_action":"on_update_lead","lead":[{"id":"a"},{"id":"b"}]}`, []string{"a", "b"}, "on_update_lead", false, nil},
		{"no id", `{"hook_action":"on_create_lead","attributes":{}}`, nil, "", false, ErrNoLeadID},
		{"path traversal id", `{"id":"../../admin"}`, nil, "", false, ErrNoLeadID},
		{"empty array", `[]`, nil, "", false, ErrNoLeadID},
		{"not json", `hook_action=on_create_lead`, nil, "", false, ErrNotJSON},
		{"string", `"abc"`, nil, "", false, ErrNoLeadID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := ParseWebhook([]byte(tc.body))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			var ids []string
			for _, e := range evs {
				ids = append(ids, e.LeadID)
				if e.Action != tc.action || e.HasCustomer != tc.hasCus {
					t.Fatalf("event %+v: want action %q hasCustomer %v", e, tc.action, tc.hasCus)
				}
			}
			if !reflect.DeepEqual(ids, tc.ids) {
				t.Fatalf("ids = %v, want %v", ids, tc.ids)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want string // RFC3339Nano UTC, "" = error
	}{
		{"2025-11-21T13:30:00Z", "2025-11-21T13:30:00Z"},
		{"2025-11-21T14:05:12.481Z", "2025-11-21T14:05:12.481Z"},
		{"2025-11-14T10:21:35.000-03:00", "2025-11-14T13:21:35Z"},
		{"2025-12-01 17:42:08.000 -0300", "2025-12-01T20:42:08Z"},
		{"2025-12-01 17:42:08 -0300", "2025-12-01T20:42:08Z"},
		{"2025-11-21 15:00:03.250", "2025-11-21T15:00:03.25Z"},
		{"2025-11-21 15:00:03", "2025-11-21T15:00:03Z"},
		{" 2025-11-21T13:30:00Z ", "2025-11-21T13:30:00Z"},
		{"", ""},
		{"21/11/2025", ""},
		{"2025-13-40 99:00:00", ""},
	}
	for _, tc := range cases {
		got, err := ParseTime(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339Nano) != tc.want || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestValidLeadID(t *testing.T) {
	for id, want := range map[string]bool{
		leadID: true, "abc-DEF_123": true, "": false, "a/b": false, "..": false, "a b": false,
		"a?x=1": false, "a%2F": false, string(make([]byte, 65)): false,
	} {
		if lead.ValidID(id) != want {
			t.Errorf("lead.ValidID(%q) = %v", id, !want)
		}
	}
}

func FuzzParseLead(f *testing.F) {
	for _, name := range []string{"c2s/lead.json", "c2s/webhook_on_update_lead.json", "c2s/webhook_array.json"} {
		f.Add(contracts.Read(name))
	}
	f.Add([]byte(`{"data":{"id":1e400,"attributes":{"customer":{"phone":-1.5e300},"messages":[{"body":{}}]}},"messages":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLead(b)
		if (l == nil) == (err == nil) {
			t.Fatalf("lead=%v err=%v: exactly one must be set", l, err)
		}
		if l != nil && l.ID == "" {
			t.Fatal("lead without id")
		}
	})
}

func FuzzParseWebhook(f *testing.F) {
	for _, name := range []string{"c2s/webhook_on_create_lead.json", "c2s/webhook_on_update_lead.json",
		"c2s/webhook_on_close_lead.json", "c2s/webhook_array.json", "c2s/webhook_envelope_on_create_lead.json", "c2s/lead.json"} {
		f.Add(contracts.Read(name))
	}
	f.Add([]byte(`{"hook_action":"x","data":{"data":{"lead":{"id":"a"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ParseWebhook(b)
		if err == nil && len(evs) == 0 {
			t.Fatal("no error and no events")
		}
		for _, e := range evs {
			if !lead.ValidID(e.LeadID) {
				t.Fatalf("unsafe lead id %q", e.LeadID)
			}
		}
	})
}
