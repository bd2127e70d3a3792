package ports

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The single-event answer is byte for byte what the map it replaced gave
// (callers and the OpenAPI examples read these keys in this order), with
// an empty event id still present.
func TestWebhookAnswerKeepsTheMapsBytes(t *testing.T) {
	for _, a := range []webhookAnswer{
		{Success: true, LeadID: "a1b2", Action: "on_create_lead", Status: "queued", EventID: "ev-<&>"},
		{Success: true, LeadID: "a1b2", Action: "on_update_lead", Status: "duplicate"},
	} {
		var got, want bytes.Buffer
		_ = json.NewEncoder(&got).Encode(a)
		_ = json.NewEncoder(&want).Encode(map[string]any{"success": a.Success, "lead_id": a.LeadID, "action": a.Action,
			"status": a.Status, "event_id": a.EventID})
		if got.String() != want.String() {
			t.Errorf("answer %s, the map gave %s", got.String(), want.String())
		}
	}
}
