package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Gateway simulates the C2S gateway (a FastAPI service). It calls the C2S
// simulator in process with the C2S token, so C2S faults and the C2S rate
// limit (one bucket per token, shared with direct callers) show through it
// the way the real gateway reports them, and messages land in the C2S
// message store. Its own faults apply before it forwards (nothing reaches
// C2S: e.g. Down with DownStatus 503) or, for lost replies, after C2S
// answered.
type Gateway struct {
	base
	c2s     *C2S
	timeout time.Duration
	mux     *http.ServeMux
}

func newGateway(b base, c2s *C2S, timeout time.Duration) *Gateway {
	g := &Gateway{base: b, c2s: c2s, timeout: timeout, mux: http.NewServeMux()}
	g.routes()
	g.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	g.mux.HandleFunc("GET /leads/{id}", func(w http.ResponseWriter, r *http.Request) {
		g.upstream(w, r, "GET", "/integration/leads/"+r.PathValue("id"), nil, http.StatusOK)
	})
	g.mux.HandleFunc("POST /leads/{id}/messages", g.postMessage)
	g.mux.HandleFunc("PATCH /leads/{id}", g.patch)
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		detail(w, http.StatusNotFound, "Not Found")
	})
	g.admin.HandleFunc("GET /_sim/messages", messagesHandler(c2s))
	return g
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handle(w, r, g.mux) }

// Messages returns the lead's messages (the store shared with C2S).
func (g *Gateway) Messages(leadID string) []Message { return g.c2s.Messages(leadID) }

// AllMessages returns every message posted through either route.
func (g *Gateway) AllMessages() []Message { return g.c2s.AllMessages() }

func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// validation writes FastAPI's 422 shape for a bad body field.
func validation(w http.ResponseWriter, loc, msg, typ string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []any{
		map[string]any{"loc": []string{"body", loc}, "msg": msg, "type": typ}}})
}

func (g *Gateway) postMessage(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Message *string `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		validation(w, "body", "value is not a valid dict", "type_error.dict")
		return
	}
	if in.Message == nil {
		validation(w, "message", "field required", "value_error.missing")
		return
	}
	id := r.PathValue("id")
	body := mustJSON(map[string]string{"leadId": id, "body": *in.Message})
	g.upstream(w, r, "POST", "/integration/leads/"+id+"/create_message", body, http.StatusCreated)
}

func (g *Gateway) patch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || !json.Valid(body) {
		validation(w, "body", "value is not a valid dict", "type_error.dict")
		return
	}
	g.upstream(w, r, "PATCH", "/integration/leads/"+r.PathValue("id"), body, http.StatusOK)
}

// upstream makes the C2S call and maps its outcome the way the gateway
// does: 404 and 429 pass through, any other failure is a 502.
func (g *Gateway) upstream(w http.ResponseWriter, r *http.Request, method, path string, body []byte, okStatus int) {
	note := &callNote{hideMessages: g.inj.hideMessages.Load()}
	ctx, cancel := context.WithTimeout(withNote(context.WithValue(r.Context(), viaKey, "gateway"), note), g.timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.c2s.token)
	req.Header.Set("Content-Type", "application/json")
	bw := newBufWriter()
	g.c2s.ServeHTTP(bw, req)
	switch st := bw.status; {
	case st >= 200 && st < 300 && json.Valid(bw.body):
		writeRaw(w, okStatus, bw.body)
	case st == http.StatusNotFound:
		detail(w, http.StatusNotFound, "Lead not found")
	case st == http.StatusTooManyRequests:
		if note.rateLimited {
			markFault(w, "rate_limit")
			g.rec.rateLimited.Add(1)
		}
		if ra := bw.h.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		detail(w, http.StatusTooManyRequests, "C2S rate limit exceeded")
	case st == 0:
		if r.Context().Err() != nil {
			return // our client left; nobody to answer
		}
		detail(w, http.StatusBadGateway, "C2S did not answer")
	default:
		detail(w, http.StatusBadGateway, "C2S error: "+strconv.Itoa(st))
	}
}
