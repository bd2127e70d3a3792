package sim

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Message is one message posted on a lead.
type Message struct {
	LeadID string    `json:"lead_id"`
	Body   string    `json:"body"`
	Route  string    `json:"route"` // "direct" or "gateway"
	At     time.Time `json:"created_at"`
}

// Subscription is one webhook subscription.
type Subscription struct {
	HookURL    string    `json:"hook_url"`
	HookAction string    `json:"hook_action"`
	At         time.Time `json:"created_at"`
}

var hookActions = map[string]bool{"on_create_lead": true, "on_update_lead": true, "on_close_lead": true}

// C2S simulates the Contact2Sale API under /integration. It owns the message
// store the gateway writes into too.
type C2S struct {
	base
	pop   *Population
	token string
	mux   *http.ServeMux

	mu      sync.Mutex
	msgs    map[string][]Message
	order   []Message // every message, in posting order
	patches map[string]map[string]any
	subs    []Subscription
}

func newC2S(b base, pop *Population, token string) *C2S {
	c := &C2S{base: b, pop: pop, token: token, mux: http.NewServeMux()}
	c.cred = func(r *http.Request) string {
		if c.tokenOK(r) {
			return c.token
		}
		return ""
	}
	c.resets = append(c.resets, c.lim.Reset)
	c.routes()
	c.resets = append(c.resets, c.resetState)
	c.resetState()
	c.mux.HandleFunc("GET /integration/leads/{id}", c.auth(c.getLead))
	c.mux.HandleFunc("PATCH /integration/leads/{id}", c.auth(c.patchLead))
	c.mux.HandleFunc("POST /integration/leads/{id}/create_message", c.auth(c.createMessage))
	c.mux.HandleFunc("POST /integration/leads/subscribe", c.auth(c.subscribe(true)))
	c.mux.HandleFunc("POST /integration/leads/unsubscribe", c.auth(c.subscribe(false)))
	c.admin.HandleFunc("GET /_sim/messages", messagesHandler(c))
	c.admin.HandleFunc("GET /_sim/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, c.Subscriptions())
	})
	c.admin.HandleFunc("GET /_sim/leads", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			ID       string   `json:"id"`
			Kind     LeadKind `json:"kind"`
			Name     string   `json:"name"`
			Phone    string   `json:"phone"`
			Email    string   `json:"email"`
			Expected []string `json:"expected_cpfs"`
		}
		out := []row{}
		for _, l := range c.pop.Leads() {
			out = append(out, row{l.ID, l.Kind, l.Name, l.Phone, l.Email, c.pop.ExpectedPersons(l.ID)})
		}
		writeJSON(w, 200, out)
	})
	return c
}

func (c *C2S) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handle(w, r, c.mux) }

func (c *C2S) resetState() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs, c.order, c.patches, c.subs = map[string][]Message{}, nil, map[string]map[string]any{}, nil
}

func c2sError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// auth accepts the token in Authorization or Authentication, the two
// spellings integrators use.
func (c *C2S) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.tokenOK(r) {
			h(w, r)
			return
		}
		c2sError(w, http.StatusUnauthorized, "Unauthorized")
	}
}

func (c *C2S) tokenOK(r *http.Request) bool {
	const scheme = "bearer "
	for _, k := range []string{"Authorization", "Authentication"} {
		if v := r.Header.Get(k); len(v) == len(scheme)+len(c.token) && strings.EqualFold(v[:len(scheme)], scheme) && v[len(scheme):] == c.token {
			return true
		}
	}
	return false
}

// hideMessages reports whether the lead document leaves messages out: set
// on C2S, or on the gateway making this call.
func (c *C2S) hideMessages(r *http.Request) bool {
	if c.inj.hideMessages.Load() {
		return true
	}
	n := noteFrom(r.Context())
	return n != nil && n.hideMessages
}

func (c *C2S) getLead(w http.ResponseWriter, r *http.Request) {
	e := c.pop.lead(r.PathValue("id"))
	if e == nil {
		c2sError(w, http.StatusNotFound, "Lead not found")
		return
	}
	writeRaw(w, http.StatusOK, c.render(e, c.hideMessages(r)))
}

// render returns the lead document with the messages posted so far (none
// when hide). A lead nobody touched is served from its pre-rendered bytes.
func (c *C2S) render(e *leadEntry, hide bool) []byte {
	c.mu.Lock()
	msgs := c.msgs[e.ID] // append-only: the prefix stays valid after unlock
	patch := c.patches[e.ID]
	c.mu.Unlock()
	if hide {
		msgs = nil
	}
	if len(msgs) == 0 && patch == nil {
		return e.Doc
	}
	root := maps.Clone(e.doc())
	data, _ := root["data"].(map[string]any)
	data = maps.Clone(data)
	if data == nil {
		data = map[string]any{}
	}
	attrs, _ := data["attributes"].(map[string]any)
	attrs = maps.Clone(attrs)
	if attrs == nil {
		attrs = map[string]any{}
	}
	maps.Copy(attrs, patch)
	if len(msgs) > 0 {
		list := make([]obj, len(msgs))
		for i, m := range msgs {
			list[i] = obj{{"message", m.Body}, {"created_at", m.At.UTC().Format("2006-01-02T15:04:05.000Z")}}
		}
		attrs["messages"] = list
	}
	data["attributes"] = attrs
	root["data"] = data
	return mustJSON(root)
}

func (c *C2S) createMessage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		LeadID string `json:"leadId"`
		Body   string `json:"body"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		c2sError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	if c.pop.lead(id) == nil {
		c2sError(w, http.StatusNotFound, "Lead not found")
		return
	}
	if strings.TrimSpace(body.Body) == "" {
		c2sError(w, http.StatusUnprocessableEntity, "body can't be blank")
		return
	}
	route := "direct"
	if via(r.Context()) == "gateway" {
		route = "gateway"
	}
	m := Message{LeadID: id, Body: body.Body, Route: route, At: time.Now()}
	c.mu.Lock()
	c.msgs[id] = append(c.msgs[id], m)
	c.order = append(c.order, m)
	n := len(c.order)
	c.mu.Unlock()
	writeJSON(w, http.StatusCreated, obj{{"data", obj{{"type", "message"}, {"id", n},
		{"attributes", obj{{"message", m.Body}, {"created_at", m.At.UTC().Format(time.RFC3339)}}}}}})
}

func (c *C2S) patchLead(w http.ResponseWriter, r *http.Request) {
	e := c.pop.lead(r.PathValue("id"))
	if e == nil {
		c2sError(w, http.StatusNotFound, "Lead not found")
		return
	}
	var body struct {
		Data struct {
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data.Attributes == nil {
		c2sError(w, http.StatusUnprocessableEntity, `expected {"data":{"type":"lead","attributes":{...}}}`)
		return
	}
	c.mu.Lock()
	p := maps.Clone(c.patches[e.ID]) // copy-on-write: render reads without the lock
	if p == nil {
		p = map[string]any{}
	}
	maps.Copy(p, body.Data.Attributes)
	c.patches[e.ID] = p
	c.mu.Unlock()
	writeRaw(w, http.StatusOK, c.render(e, c.hideMessages(r)))
}

func (c *C2S) subscribe(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var s Subscription
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			writeJSON(w, http.StatusBadRequest, obj{{"success", false}, {"msg", "invalid JSON body"}})
			return
		}
		if !hookActions[s.HookAction] {
			writeJSON(w, http.StatusUnprocessableEntity, obj{{"success", false}, {"msg", "hook_action not found"}})
			return
		}
		if on && s.HookURL == "" {
			writeJSON(w, http.StatusUnprocessableEntity, obj{{"success", false}, {"msg", "hook_url can't be blank"}})
			return
		}
		c.mu.Lock()
		kept := c.subs[:0:0]
		for _, x := range c.subs {
			if x.HookAction != s.HookAction || (s.HookURL != "" && x.HookURL != s.HookURL) {
				kept = append(kept, x)
			}
		}
		if on {
			s.At = time.Now()
			kept = append(kept, s)
		}
		c.subs = kept
		c.mu.Unlock()
		msg := "Unsubscribed successfully"
		if on {
			msg = "Subscribed successfully"
		}
		writeJSON(w, http.StatusOK, obj{{"success", true}, {"message", msg}})
	}
}

// Messages returns the messages posted on a lead, in order.
func (c *C2S) Messages(leadID string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message{}, c.msgs[leadID]...)
}

// AllMessages returns every message posted, in posting order.
func (c *C2S) AllMessages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message{}, c.order...)
}

// MessageCount is how many messages were posted on all leads.
func (c *C2S) MessageCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

// Subscriptions lists the current webhook subscriptions.
func (c *C2S) Subscriptions() []Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Subscription{}, c.subs...)
}

// Patches returns the attributes PATCHed onto a lead, merged.
func (c *C2S) Patches(leadID string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.patches[leadID])
}

type messageSource interface {
	Messages(string) []Message
	AllMessages() []Message
}

// messagesHandler serves /_sim/messages?lead= (one lead) or every message.
func messagesHandler(s messageSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id := r.URL.Query().Get("lead"); id != "" {
			writeJSON(w, 200, s.Messages(id))
			return
		}
		writeJSON(w, 200, s.AllMessages())
	}
}
