package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/contracts"
)

// eventually waits for cond, which the simulator makes true on its own
// goroutine; it is a wait on a condition, not a timing assumption.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fresh is a client that never reuses a connection, so Go's transport does
// not silently replay a GET whose connection was dropped.
var fresh = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

type lostTarget struct {
	name   string
	c      Controls
	req    func(ctx context.Context) *http.Request
	effect func() int // how many times the effect happened
	ok     int        // the status the handler answers
}

func lostTargets(s *Sims) []lostTarget {
	lead := s.Pop.Leads()[3].ID
	post := func(ctx context.Context, u, body string, hdr ...string) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	return []lostTarget{
		{"c2s", s.C2S, func(ctx context.Context) *http.Request {
			return post(ctx, s.C2SBaseURL+"/integration/leads/"+lead+"/create_message", `{"leadId":"`+lead+`","body":"oi"}`, bearer(s)...)
		}, func() int { return len(s.C2S.Messages(lead)) }, 201},
		{"gateway", s.Gateway, func(ctx context.Context) *http.Request {
			return post(ctx, s.GatewayURL+"/leads/"+lead+"/messages", `{"message":"oi"}`)
		}, func() int { return len(s.C2S.Messages(lead)) }, 201},
		{"diretrix", s.Diretrix, func(ctx context.Context) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.DiretrixBaseURL+"/Consultas/Pessoa/Telefone/"+HelenaPhone, nil)
			req.SetBasicAuth(s.Config.DiretrixUser, s.Config.DiretrixPass)
			return req
		}, func() int { return int(s.Diretrix.LostReplies()) }, 200},
		{"workapi", s.WorkAPI, func(ctx context.Context) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.workURL("cpf", OtavioCPF), nil)
			return req
		}, func() int { return s.WorkAPI.PaidCalls(OtavioCPF) }, 200},
	}
}

func TestLostReplies(t *testing.T) {
	s := start(t, Config{Seed: 20})
	for _, tg := range lostTargets(s) {
		t.Run(tg.name, func(t *testing.T) {
			t.Cleanup(tg.c.ClearFaults)
			check := func(t *testing.T, fault string) {
				t.Helper()
				if n := tg.effect(); n != 1 {
					t.Errorf("effect happened %d times, want 1", n)
				}
				if n := tg.c.LostReplies(); n != 1 {
					t.Errorf("LostReplies = %d, want 1", n)
				}
				eventually(t, "the request in the log", func() bool { return tg.c.RequestCount() == 1 })
				if rs := tg.c.Requests(); rs[0].Fault != fault || rs[0].Handled != tg.ok {
					t.Errorf("log = %+v, want fault %s handled %d", rs[0], fault, tg.ok)
				}
				if m := s.C2S.AllMessages(); tg.name == "gateway" && (s.C2S.LostReplies() != 0 || len(m) != 1 || m[0].Route != "gateway") {
					t.Errorf("C2S lost %d replies; messages %+v", s.C2S.LostReplies(), m)
				}
				if tg.name == "workapi" && s.WorkAPI.LostPaidCalls(OtavioCPF) != 1 {
					t.Errorf("LostPaidCalls = %d", s.WorkAPI.LostPaidCalls(OtavioCPF))
				}
			}

			t.Run("502", func(t *testing.T) {
				s.Reset()
				tg.c.SetFaults(Faults{LostReply502Rate: 1})
				res, err := fresh.Do(tg.req(context.Background()))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 502 {
					t.Errorf("status %d: %s", res.StatusCode, body)
				}
				if tg.name == "gateway" {
					if _, ok := decode(t, body).(map[string]any)["detail"]; !ok {
						t.Errorf("not FastAPI-shaped: %s", body)
					}
				} else if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || json.Valid(body) {
					t.Errorf("want a plain error page, got %s %q", ct, body)
				}
				check(t, "lost_502")
			})

			t.Run("hang", func(t *testing.T) {
				s.Reset()
				tg.c.SetFaults(Faults{LostReplyHangRate: 1})
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				errc := make(chan error, 1)
				go func() {
					res, err := fresh.Do(tg.req(ctx))
					if err == nil {
						res.Body.Close()
						err = errors.New("answered " + res.Status)
					}
					errc <- err
				}()
				// The effect happens, and the client still has no answer:
				// only giving up ends its call.
				eventually(t, "the effect", func() bool { return tg.c.LostReplies() == 1 })
				cancel()
				if err := <-errc; !errors.Is(err, context.Canceled) {
					t.Errorf("client: %v, want its own cancellation", err)
				}
				check(t, "lost_hang")
			})

			t.Run("drop", func(t *testing.T) {
				s.Reset()
				tg.c.SetFaults(Faults{LostReplyDropRate: 1})
				res, err := fresh.Do(tg.req(context.Background()))
				if err == nil {
					res.Body.Close()
					t.Fatalf("answered %s, want a dropped connection", res.Status)
				}
				check(t, "lost_drop")
			})

			t.Run("over HTTP", func(t *testing.T) {
				s.Reset()
				base := strings.TrimSuffix(tg.req(context.Background()).URL.Scheme+"://"+tg.req(context.Background()).URL.Host, "/")
				if r := do(t, "PATCH", base+"/_sim/faults", `{"lost_reply_502_rate":1}`); r.status != 200 || tg.c.Faults().LostReply502Rate != 1 {
					t.Fatalf("PATCH: %d %s", r.status, r.body)
				}
				res, err := fresh.Do(tg.req(context.Background()))
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				var st Stats
				json.Unmarshal(do(t, "GET", base+"/_sim/stats", "").body, &st)
				if res.StatusCode != 502 || st != (Stats{Requests: 1, LostReplies: 1}) {
					t.Errorf("status %d, stats %+v", res.StatusCode, st)
				}
			})
		})
	}
}

// A reply C2S loses on the gateway's call: the message is posted, and the
// gateway answers 502 as it does for any C2S failure.
func TestLostRepliesBehindTheGateway(t *testing.T) {
	s := start(t, Config{Seed: 21, GatewayTimeout: 100 * time.Millisecond})
	lead := s.Pop.Leads()[1].ID
	for _, f := range []Faults{{LostReply502Rate: 1}, {LostReplyHangRate: 1}, {LostReplyDropRate: 1}} {
		s.Reset()
		s.C2S.SetFaults(f)
		r := do(t, "POST", s.GatewayURL+"/leads/"+lead+"/messages", `{"message":"oi"}`)
		if r.status != 502 || !strings.Contains(string(r.body), `"detail"`) {
			t.Errorf("%+v: gateway %d %s", f, r.status, r.body)
		}
		if m := s.C2S.Messages(lead); len(m) != 1 || m[0].Route != "gateway" {
			t.Errorf("%+v: messages %+v", f, m)
		}
		if s.C2S.LostReplies() != 1 || s.Gateway.LostReplies() != 0 {
			t.Errorf("%+v: lost c2s %d gateway %d", f, s.C2S.LostReplies(), s.Gateway.LostReplies())
		}
	}
	s.C2S.ClearFaults()
}

// The gateway's own refusal before forwarding reaches nothing: no post.
func TestGateway503BeforeForwarding(t *testing.T) {
	s := start(t, Config{Seed: 22})
	lead := s.Pop.Leads()[2].ID
	for _, f := range []Faults{{Down: true, DownStatus: 503}, {ErrorRate: 1, ErrorStatus: 503}} {
		s.Gateway.SetFaults(f)
		r := do(t, "POST", s.GatewayURL+"/leads/"+lead+"/messages", `{"message":"oi"}`)
		if r.status != 503 || !strings.Contains(string(r.body), `"detail"`) {
			t.Errorf("%+v: %d %s", f, r.status, r.body)
		}
	}
	if s.C2S.MessageCount() != 0 || s.C2S.RequestCount() != 0 || s.Gateway.LostReplies() != 0 {
		t.Errorf("posted %d, C2S saw %d requests", s.C2S.MessageCount(), s.C2S.RequestCount())
	}
}

func TestLostReplyRatesReproducible(t *testing.T) {
	seq := func(seed uint64) []faultKind {
		in := newInjector(seed, Faults{LostReply502Rate: 0.2, LostReplyHangRate: 0.2, LostReplyDropRate: 0.2}, nil)
		out := make([]faultKind, 300)
		for i := range out {
			out[i] = in.decide().kind
		}
		return out
	}
	a, b := seq(3), seq(3)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different faults")
	}
	if reflect.DeepEqual(a, seq(4)) {
		t.Error("different seeds, same faults")
	}
	n := map[faultKind]int{}
	for _, k := range a {
		n[k]++
	}
	// 0.2, then 0.2 of the rest, then 0.2 of that: 60, 48, 38 of 300.
	for k, want := range map[faultKind]int{faultLost502: 60, faultLostHang: 48, faultLostDrop: 38} {
		if n[k] < want/2 || n[k] > want*2 {
			t.Errorf("%s: %d of 300, expected about %d", faultNames[k], n[k], want)
		}
	}
	// Adding lost replies leaves the sequence of the older faults alone.
	old := newInjector(5, Faults{ErrorRate: 0.3}, nil)
	mixed := newInjector(5, Faults{ErrorRate: 0.3, LostReply502Rate: 0.5}, nil)
	for i := range 200 {
		if o, m := old.decide().kind == faultError, mixed.decide().kind == faultError; o != m {
			t.Fatalf("request %d: error %v alone, %v with lost replies", i, o, m)
		}
	}
}

func TestLeadMessagesHidden(t *testing.T) {
	s := start(t, Config{Seed: 23})
	lead := s.Pop.Leads()[4].ID
	if r := do(t, "POST", s.GatewayURL+"/leads/"+lead+"/messages", `{"message":"oi"}`); r.status != 201 {
		t.Fatalf("post: %d", r.status)
	}
	c2sURL, gwURL := s.C2SBaseURL+"/integration/leads/"+lead, s.GatewayURL+"/leads/"+lead
	has := func(u, method, body string) bool {
		t.Helper()
		r := do(t, method, u, body, bearer(s)...)
		if r.status != 200 {
			t.Fatalf("%s %s: %d %s", method, u, r.status, r.body)
		}
		attrs := decode(t, r.body).(map[string]any)["data"].(map[string]any)["attributes"].(map[string]any)
		_, ok := attrs["messages"]
		if bytes.Contains(r.body, []byte(`"messages"`)) != ok {
			t.Fatalf("messages outside data.attributes: %s", r.body)
		}
		return ok
	}
	// Today's default: the posted message is listed, through both routes.
	if !has(c2sURL, "GET", "") || !has(gwURL, "GET", "") {
		t.Fatal("default document lacks the messages")
	}
	// Set on C2S: gone from both routes, GET and PATCH answers alike.
	s.C2S.SetFaults(Faults{LeadMessagesHidden: true})
	patch := `{"data":{"type":"lead","attributes":{"description":"x"}}}`
	if has(c2sURL, "GET", "") || has(gwURL, "GET", "") || has(c2sURL, "PATCH", patch) || has(gwURL, "PATCH", patch) {
		t.Error("messages shown while hidden on C2S")
	}
	// Set on the gateway only: gone through the gateway, shown direct.
	s.C2S.ClearFaults()
	if r := do(t, "PATCH", s.GatewayURL+"/_sim/faults", `{"lead_messages_hidden":true}`); r.status != 200 {
		t.Fatalf("PATCH faults: %d", r.status)
	}
	if !has(c2sURL, "GET", "") || has(gwURL, "GET", "") {
		t.Error("gateway-only hiding")
	}
	s.Gateway.ClearFaults()
	if !has(gwURL, "GET", "") {
		t.Error("messages still hidden after ClearFaults")
	}
	// The untouched contract lead is the contract document either way.
	s.C2S.SetFaults(Faults{LeadMessagesHidden: true})
	jsonEqual(t, do(t, "GET", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, "", bearer(s)...).body, contracts.Read("c2s/lead.json"))
}

// out_of_credits is a window: on and off at run time, over HTTP and Go,
// with nothing paid while it lasts.
func TestOutOfCreditsWindow(t *testing.T) {
	s := start(t, Config{Seed: 24})
	u, admin := s.workURL("cpf", HelenaCPF), strings.TrimSuffix(s.WorkAPIURL, "/api")+"/_sim/faults"
	person := func() bool { return bytes.Contains(do(t, "GET", u, "").body, []byte(`"DadosBasicos"`)) }
	if !person() {
		t.Fatal("healthy call")
	}
	do(t, "PATCH", admin, `{"latency_min":"1ms"}`)
	if r := do(t, "PATCH", admin, `{"out_of_credits":true}`); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := do(t, "GET", u, ""); r.status != 200 || !bytes.Equal(r.body, contracts.Read("workapi/error_credits.json")) {
		t.Errorf("in the window: %d %s", r.status, r.body)
	}
	do(t, "PATCH", admin, `{"out_of_credits":false}`)
	if f := s.WorkAPI.Faults(); f.OutOfCredits || f.LatencyMin != time.Millisecond {
		t.Errorf("faults after the window: %+v", f)
	}
	if !person() {
		t.Error("window did not end")
	}
	s.WorkAPI.UpdateFaults(func(f *Faults) { f.OutOfCredits = true })
	if person() {
		t.Error("UpdateFaults did not open a window")
	}
	s.WorkAPI.UpdateFaults(func(f *Faults) { f.OutOfCredits = false })
	if !person() {
		t.Error("UpdateFaults did not close it")
	}
	if n := s.WorkAPI.PaidCalls(HelenaCPF); n != 3 {
		t.Errorf("PaidCalls = %d, want the 3 served outside the windows", n)
	}
}

// Charged calls per CPF: served persons, lost replies included; nothing
// answered before the handler or refused is charged.
func TestChargedCallsPerCPF(t *testing.T) {
	s := start(t, Config{Seed: 25})
	p := s.Pop.People()[7].CPF
	get := func(cpf string) {
		if res, err := fresh.Get(s.workURL("cpf", cpf)); err == nil {
			res.Body.Close()
		}
	}
	get(p) // served: 1
	for _, f := range []Faults{{ErrorRate: 1}, {Burst429: 1}, {Down: true}, {Down: true, DownStatus: 503},
		{OutOfCredits: true}, {TokenExpired: true}} {
		s.WorkAPI.SetFaults(f)
		get(p) // refused: free
	}
	for _, f := range []Faults{{LostReply502Rate: 1}, {LostReplyDropRate: 1}, {MalformedRate: 1}} {
		s.WorkAPI.SetFaults(f)
		get(p) // served, the reply lost or broken: charged
	}
	s.WorkAPI.SetFaults(Faults{LostReply502Rate: 1})
	get("11144477735") // not found: free even when the reply is lost
	s.WorkAPI.ClearFaults()
	get(HelenaCPF)
	if got := s.WorkAPI.PaidCalls(p); got != 4 {
		t.Errorf("PaidCalls = %d, want 4", got)
	}
	if got := s.WorkAPI.LostPaidCalls(p); got != 2 {
		t.Errorf("LostPaidCalls = %d, want 2", got)
	}
	if s.WorkAPI.TotalPaidCalls() != 5 || s.WorkAPI.LostReplies() != 3 {
		t.Errorf("total %d, lost replies %d", s.WorkAPI.TotalPaidCalls(), s.WorkAPI.LostReplies())
	}
	var paid struct {
		Total     int64          `json:"total"`
		ByCPF     map[string]int `json:"by_cpf"`
		Lost      int64          `json:"lost"`
		LostByCPF map[string]int `json:"lost_by_cpf"`
	}
	json.Unmarshal(do(t, "GET", strings.TrimSuffix(s.WorkAPIURL, "/api")+"/_sim/paid", "").body, &paid)
	if paid.Total != 5 || paid.ByCPF[p] != 4 || paid.Lost != 2 || paid.LostByCPF[p] != 2 || paid.LostByCPF[HelenaCPF] != 0 {
		t.Errorf("/_sim/paid = %+v", paid)
	}
	jsonEqual(t, do(t, "GET", strings.TrimSuffix(s.WorkAPIURL, "/api")+"/_sim/paid?cpf="+p, "").body,
		[]byte(`{"cpf":"`+p+`","calls":4,"lost":2}`))
	s.Reset()
	if s.WorkAPI.LostPaidCalls(p) != 0 || s.WorkAPI.LostReplies() != 0 {
		t.Error("Reset kept lost counts")
	}
}

// A reply held after the effect is released when the simulator closes.
func TestLostHangReleasedByClose(t *testing.T) {
	s := start(t, Config{Seed: 26, People: 20, Faults: FaultSet{Gateway: Faults{LostReplyHangRate: 1}}})
	lead := s.Pop.Leads()[0].ID
	errc := make(chan error, 1)
	go func() {
		res, err := fresh.Post(s.GatewayURL+"/leads/"+lead+"/messages", "application/json", strings.NewReader(`{"message":"oi"}`))
		if err == nil {
			res.Body.Close()
			err = errors.New("answered " + res.Status)
		}
		errc <- err
	}()
	eventually(t, "the post", func() bool { return s.Gateway.LostReplies() == 1 })
	s.Close()
	if err := <-errc; err == nil || strings.HasPrefix(err.Error(), "answered") {
		t.Errorf("client: %v, want the connection closed", err)
	}
	if s.C2S.MessageCount() != 1 {
		t.Errorf("%d messages", s.C2S.MessageCount())
	}
}
