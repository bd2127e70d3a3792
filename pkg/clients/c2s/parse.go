package c2s

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

var (
	// ErrNotJSON: the body is not a single JSON value.
	ErrNotJSON = errors.New("c2s: body is not JSON")
	// ErrNoLeadID: the document carries no usable lead id.
	ErrNoLeadID = errors.New("c2s: no lead id")
)

// Customer is the part of a lead the product needs. Absent, null and
// oddly typed fields come out as "".
type Customer struct {
	Name   string
	Email  string
	Phone  string
	Phone2 string
}

// Empty reports whether no field is set.
func (c Customer) Empty() bool {
	return c.Name == "" && c.Email == "" && c.Phone == "" && c.Phone2 == ""
}

// Lead is the tolerant view of a C2S JSON:API lead document.
type Lead struct {
	ID       string
	Customer Customer
	Messages []string // bodies already posted on the lead (to avoid posting twice)
	// HasMessages: the document carries a messages list (at
	// data.attributes.messages or a top-level messages), even an empty
	// one. Without it (the confirmed lead.json has none) nobody can tell
	// whether a message is already on the lead.
	HasMessages bool
	UpdatedAt   string // raw; see ParseTime
}

// ParseLead reads the JSON:API lead document returned by C2S and the
// gateway. Only a body that is not JSON (ErrNotJSON) or lacks data.id
// (ErrNoLeadID) fails; any other field may be missing, null or mistyped.
func ParseLead(b []byte) (*Lead, error) {
	v, err := decode(b)
	if err != nil {
		return nil, err
	}
	root := obj(v)
	data := obj(root["data"])
	id := str(data["id"])
	if id == "" {
		return nil, ErrNoLeadID
	}
	attrs := obj(data["attributes"])
	l := &Lead{
		ID:        id,
		Customer:  customer(attrs["customer"]),
		UpdatedAt: str(attrs["updated_at"]),
	}
	l.Messages = appendMessages(l.Messages, attrs["messages"])
	l.Messages = appendMessages(l.Messages, root["messages"])
	_, inAttrs := attrs["messages"].([]any)
	_, atRoot := root["messages"].([]any)
	l.HasMessages = inAttrs || atRoot
	return l, nil
}

func appendMessages(dst []string, v any) []string {
	items, _ := v.([]any)
	for _, it := range items {
		var body string
		switch m := it.(type) {
		case map[string]any:
			if body = str(m["message"]); body == "" {
				body = str(m["body"])
			}
		case string:
			body = m
		}
		if body != "" {
			dst = append(dst, body)
		}
	}
	return dst
}

func customer(v any) Customer {
	m := obj(v)
	return Customer{
		Name:   str(m["name"]),
		Email:  str(m["email"]),
		Phone:  str(m["phone"]),
		Phone2: str(m["phone2"]),
	}
}

// WebhookEvent is one lead event from a C2S webhook delivery.
type WebhookEvent struct {
	LeadID       string
	Action       string // on_create_lead, on_update_lead, on_close_lead, or as sent
	UpdatedAtRaw string
	UpdatedAt    time.Time // zero when UpdatedAtRaw is missing or unparsable
	Customer     Customer
	// HasCustomer: the event carried a customer with at least one field set.
	// Callers still fetch the lead when a field they need is empty.
	HasCustomer bool
}

// ParseWebhook accepts every delivery shape seen from C2S: a single event
// (top-level id, hook_action, attributes), a JSON array of events, the
// {hook_action, lead:{id, attributes}} envelope and the
// {hook_action, data:{type, id, attributes}, timestamp} envelope. Items
// without a sane lead id are skipped; ErrNoLeadID when none is left.
func ParseWebhook(b []byte) ([]WebhookEvent, error) {
	v, err := decode(b)
	if err != nil {
		return nil, err
	}
	var out []WebhookEvent
	switch t := v.(type) {
	case []any:
		for _, it := range t {
			out = appendEvents(out, obj(it), "", 0)
		}
	case map[string]any:
		out = appendEvents(out, t, "", 0)
	}
	if len(out) == 0 {
		return nil, ErrNoLeadID
	}
	return out, nil
}

func appendEvents(out []WebhookEvent, m map[string]any, action string, depth int) []WebhookEvent {
	if m == nil || depth > 2 {
		return out
	}
	if a := str(m["hook_action"]); a != "" {
		action = a
	}
	// Envelopes: the lead sits under "lead" or "data" (object or list).
	for _, key := range []string{"lead", "data"} {
		switch inner := m[key].(type) {
		case map[string]any:
			return appendEvents(out, inner, action, depth+1)
		case []any:
			for _, it := range inner {
				out = appendEvents(out, obj(it), action, depth+1)
			}
			return out
		}
	}
	id := str(m["id"])
	if id == "" {
		id = str(m["lead_id"])
	}
	if !lead.ValidID(id) {
		return out
	}
	attrs := obj(m["attributes"])
	if attrs == nil {
		attrs = m // some senders flatten the attributes
	}
	ev := WebhookEvent{
		LeadID:       id,
		Action:       action,
		UpdatedAtRaw: str(attrs["updated_at"]),
		Customer:     customer(attrs["customer"]),
	}
	ev.HasCustomer = !ev.Customer.Empty()
	if t, err := ParseTime(ev.UpdatedAtRaw); err == nil {
		ev.UpdatedAt = t
	}
	return append(out, ev)
}

var timeLayouts = []string{
	time.RFC3339Nano,            // 2025-11-21T13:30:00Z, ...14:05:12.481Z, ...-03:00
	"2006-01-02 15:04:05 -0700", // 2025-12-01 17:42:08.000 -0300 (fraction accepted)
	"2006-01-02 15:04:05Z07:00", // space instead of T
	"2006-01-02T15:04:05-0700",  // offset without colon
	"2006-01-02 15:04:05 MST",   // named zone
	"2006-01-02 15:04:05",       // naive: UTC
	"2006-01-02T15:04:05",       // naive: UTC
}

// ParseTime reads the updated_at forms C2S sends: RFC 3339 with or without
// a fraction, "2025-12-01 17:42:08.000 -0300", and a naive
// "2025-11-21 15:00:03.250", which means UTC. Results are in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	var firstErr error
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err == nil {
			return t.UTC(), nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return time.Time{}, firstErr
}

// decode reads exactly one JSON value, keeping numbers exact.
func decode(b []byte) (any, error) {
	var v any
	if err := jsonx.DecodeOne(b, &v); err != nil {
		return nil, ErrNotJSON
	}
	return v, nil
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// str renders a scalar as text: strings trimmed, numbers exact (phones and
// ids sometimes arrive as numbers), anything else "".
func str(v any) string {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t)
	case json.Number:
		s := t.String()
		if strings.ContainsAny(s, ".eE") {
			if f, err := t.Float64(); err == nil && f == float64(int64(f)) {
				return strconv.FormatInt(int64(f), 10)
			}
		}
		return s
	}
	return ""
}
