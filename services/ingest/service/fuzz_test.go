package service_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/pkg/contracts"
)

// webhookFiles are the contract's delivery shapes.
var webhookFiles = []string{
	"c2s/webhook_on_create_lead.json",
	"c2s/webhook_on_update_lead.json",
	"c2s/webhook_on_close_lead.json",
	"c2s/webhook_envelope_on_create_lead.json",
	"c2s/webhook_array.json",
}

// mutations turn one valid delivery into the odd ones real traffic brings:
// cut, re-wrapped, oddly typed, with NULs, invalid UTF-8 and huge values.
var mutations = []func([]byte) []byte{
	func(b []byte) []byte { return b },
	func(b []byte) []byte { return b[:len(b)/2] },
	func(b []byte) []byte { return append([]byte("["), append(b, ']')...) },
	func(b []byte) []byte { return []byte(`{"hook_action":"on_create_lead","lead":` + string(b) + `}`) },
	func(b []byte) []byte {
		return []byte(`{"hook_action":"on_update_lead","data":[` + string(b) + `,null,7]}`)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"updated_at": "`), []byte(`"updated_at": "\u0000`), 1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"updated_at": "`), []byte("\"updated_at\": \"\xff\xfe"), 1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"updated_at": "`), []byte(`"updated_at": "`+strings.Repeat("9", 5000)), 1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"updated_at": "`), []byte(`"updated_at": 1732196400, "x": "`), 1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"customer": {`), []byte(`"customer": null, "c": {`), 1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"name": "`), []byte(`"name": "\u0000\ud800`), -1)
	},
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"hook_action": "`), []byte(`"hook_action": "`+strings.Repeat("\\u0000", 300)), 1)
	},
	func(b []byte) []byte { return bytes.Replace(b, []byte(`"phone": "`), []byte(`"phone": ["`), 1) },
	func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`"id"`), []byte(`"lead_id"`)) },
	func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"`), []byte(`"`+strings.Repeat("a", 65)+`"`), -1)
	},
	func(b []byte) []byte { return bytes.Replace(b, []byte("{"), []byte(`{"attributes":`), 1) },
}

// FuzzWebhook drives the real handler on real Postgres and JetStream with
// the contract's shapes and random mutations of them: whatever arrives, the
// answer is a deliberate 2xx or 4xx, never a 5xx (a panic would be a 500
// through the recoverer, or a dropped connection).
func FuzzWebhook(f *testing.F) {
	in := startIngest(f, nil)
	for _, name := range webhookFiles {
		body := contracts.Read(name)
		for _, m := range mutations {
			f.Add(m(bytes.Clone(body)))
		}
	}
	hook := in.URL + "/api/v1/webhooks/c2s?token=" + secret
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := http.Post(hook, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("request failed (handler crashed?): %v", err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q", resp.StatusCode, body)
		}
	})
}
