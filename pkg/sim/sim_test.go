package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/contracts"
)

// start runs a small population on loopback ports for one test.
func start(t testing.TB, cfg Config) *Sims {
	t.Helper()
	if cfg.People == 0 {
		cfg.People = 200
	}
	s := New(cfg)
	if _, err := s.StartLocal(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func do(t testing.TB, method, u string, body string, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, b, res.Header}
}

func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return v
}

func jsonEqual(t testing.TB, got []byte, want []byte) {
	t.Helper()
	if g, w := decode(t, got), decode(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

func bearer(s *Sims) []string { return []string{"Authorization", "Bearer " + s.Config.C2SToken} }

func (s *Sims) workURL(modulo, consulta string) string {
	return s.WorkAPIURL + "?" + url.Values{"token": {s.Config.WorkToken}, "modulo": {modulo}, "consulta": {consulta}}.Encode()
}

func (s *Sims) diretrixGet(t testing.TB, kind, key string) resp {
	req, _ := http.NewRequest("GET", s.DiretrixBaseURL+"/Consultas/Pessoa/"+kind+"/"+url.PathEscape(key), nil)
	req.SetBasicAuth(s.Config.DiretrixUser, s.Config.DiretrixPass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b, res.Header}
}

func TestContractShapes(t *testing.T) {
	s := start(t, Config{Seed: 7})
	tests := []struct {
		name string
		get  func() resp
		want string // contract file
	}{
		{"c2s lead", func() resp { return do(t, "GET", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, "", bearer(s)...) }, "c2s/lead.json"},
		{"gateway lead", func() resp { return do(t, "GET", s.GatewayURL+"/leads/"+ContractLeadID, "") }, "c2s/lead.json"},
		{"workapi full", func() resp { return do(t, "GET", s.workURL("cpf", HelenaCPF), "") }, "workapi/cpf.json"},
		{"workapi sparse", func() resp { return do(t, "GET", s.workURL("cpf", OtavioCPF), "") }, "workapi/cpf_sparse.json"},
		{"workapi bad token", func() resp { return do(t, "GET", s.WorkAPIURL+"?token=nope&modulo=cpf&consulta="+HelenaCPF, "") }, "workapi/error_token.json"},
		{"diretrix phone", func() resp { return s.diretrixGet(t, "Telefone", HelenaPhone) }, "diretrix/phone.json"},
		{"diretrix email", func() resp { return s.diretrixGet(t, "Email", HelenaEmail) }, "diretrix/email.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.get()
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			jsonEqual(t, r.body, contracts.Read(tc.want))
		})
	}
}

func TestContractLeads(t *testing.T) {
	s := start(t, Config{Seed: 7})
	// The lead's customer leads to Helena through both identifiers.
	var doc struct {
		Data struct {
			ID         string `json:"id"`
			Attributes struct {
				Customer struct{ Name, Email, Phone string } `json:"customer"`
			} `json:"attributes"`
		} `json:"data"`
	}
	r := do(t, "GET", s.C2SBaseURL+"/integration/leads/"+OtavioLeadID, "", bearer(s)...)
	if err := json.Unmarshal(r.body, &doc); err != nil || r.status != 200 {
		t.Fatalf("status %d err %v", r.status, err)
	}
	c := doc.Data.Attributes.Customer
	if doc.Data.ID != OtavioLeadID || c.Phone != "5511912340987" || c.Email != OtavioEmail || c.Name != "Otavio Prado" {
		t.Errorf("otavio lead = %+v", doc)
	}
	for _, tc := range []struct{ kind, key string }{{"Telefone", OtavioPhone}, {"Email", OtavioEmail}} {
		jsonEqual(t, s.diretrixGet(t, tc.kind, tc.key).body, []byte(`[{"nome":"OTAVIO PRADO LINS","cpf":"74291506325"}]`))
	}
	for id, want := range map[string][]string{ContractLeadID: {HelenaCPF}, OtavioLeadID: {OtavioCPF}} {
		if got := s.Pop.ExpectedPersons(id); !reflect.DeepEqual(got, want) {
			t.Errorf("ExpectedPersons(%s) = %v, want %v", id, got, want)
		}
	}
}

func TestAuth(t *testing.T) {
	s := start(t, Config{Seed: 1, C2SToken: "tok", DiretrixUser: "u", DiretrixPass: "p", WorkToken: "wt"})
	lead := s.C2SBaseURL + "/integration/leads/" + ContractLeadID
	dx := s.DiretrixBaseURL + "/Consultas/Pessoa/Telefone/" + HelenaPhone
	basic := func(u, p string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(u, p)
		return req.Header.Get("Authorization")
	}
	tests := []struct {
		name   string
		url    string
		hdr    []string
		status int
	}{
		{"c2s none", lead, nil, 401},
		{"c2s wrong", lead, []string{"Authorization", "Bearer nope"}, 401},
		{"c2s no scheme", lead, []string{"Authorization", "tok"}, 401},
		{"c2s authorization", lead, []string{"Authorization", "Bearer tok"}, 200},
		{"c2s authentication", lead, []string{"Authentication", "Bearer tok"}, 200},
		{"c2s lower-case scheme", lead, []string{"Authorization", "bearer tok"}, 200},
		{"c2s unknown lead", s.C2SBaseURL + "/integration/leads/ffffffffffffffffffffffffffffffff", []string{"Authorization", "Bearer tok"}, 404},
		{"diretrix none", dx, nil, 401},
		{"diretrix wrong", dx, []string{"Authorization", basic("u", "x")}, 401},
		{"diretrix ok", dx, []string{"Authorization", basic("u", "p")}, 200},
		{"gateway needs none", s.GatewayURL + "/leads/" + ContractLeadID, nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := do(t, "GET", tc.url, "", tc.hdr...); r.status != tc.status {
				t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
		})
	}
	// Work API refuses with HTTP 200 and the token error body.
	r := do(t, "GET", s.WorkAPIURL+"?token=work-token&modulo=cpf&consulta="+HelenaCPF, "")
	if r.status != 200 || !bytes.Equal(r.body, contracts.Read("workapi/error_token.json")) {
		t.Errorf("bad token: %d %s", r.status, r.body)
	}
	if s.WorkAPI.TotalPaidCalls() != 0 {
		t.Error("a refused call was paid")
	}
}

func TestMessagesBothRoutes(t *testing.T) {
	s := start(t, Config{Seed: 2})
	lead := s.Pop.Leads()[5].ID
	r := do(t, "POST", s.C2SBaseURL+"/integration/leads/"+lead+"/create_message", `{"leadId":"`+lead+`","body":"first"}`, bearer(s)...)
	if r.status != 201 {
		t.Fatalf("direct: %d %s", r.status, r.body)
	}
	r = do(t, "POST", s.GatewayURL+"/leads/"+lead+"/messages", `{"message":"second"}`)
	if r.status != 201 {
		t.Fatalf("gateway: %d %s", r.status, r.body)
	}
	got := s.C2S.Messages(lead)
	if len(got) != 2 || got[0].Body != "first" || got[0].Route != "direct" || got[1].Body != "second" || got[1].Route != "gateway" {
		t.Fatalf("messages = %+v", got)
	}
	// The lead document lists them, through either route.
	for _, u := range []string{s.C2SBaseURL + "/integration/leads/" + lead, s.GatewayURL + "/leads/" + lead} {
		var doc struct {
			Data struct {
				Attributes struct {
					Messages []struct {
						Message   string `json:"message"`
						CreatedAt string `json:"created_at"`
					} `json:"messages"`
				} `json:"attributes"`
			} `json:"data"`
		}
		json.Unmarshal(do(t, "GET", u, "", bearer(s)...).body, &doc)
		m := doc.Data.Attributes.Messages
		if len(m) != 2 || m[0].Message != "first" || m[1].Message != "second" || m[0].CreatedAt == "" {
			t.Errorf("%s messages = %+v", u, m)
		}
	}
	tests := []struct {
		name, method, url, body string
		status                  int
		contains                string
	}{
		{"direct unknown lead", "POST", s.C2SBaseURL + "/integration/leads/ffffffffffffffffffffffffffffffff/create_message", `{"body":"x"}`, 404, ""},
		{"direct blank body", "POST", s.C2SBaseURL + "/integration/leads/" + lead + "/create_message", `{"body":""}`, 422, ""},
		{"gateway unknown lead", "POST", s.GatewayURL + "/leads/ffffffffffffffffffffffffffffffff/messages", `{"message":"x"}`, 404, `"detail"`},
		{"gateway missing field", "POST", s.GatewayURL + "/leads/" + lead + "/messages", `{}`, 422, `field required`},
		{"gateway not json", "POST", s.GatewayURL + "/leads/" + lead + "/messages", `nope`, 422, `"detail"`},
		{"gateway health", "GET", s.GatewayURL + "/", "", 200, `{"status":"ok"}`},
		{"gateway unknown route", "GET", s.GatewayURL + "/nothing", "", 404, `{"detail":"Not Found"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, tc.url, tc.body, bearer(s)...)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.contains) {
				t.Errorf("%d %s, want %d containing %s", r.status, r.body, tc.status, tc.contains)
			}
		})
	}
	if n := s.C2S.MessageCount(); n != 2 {
		t.Errorf("MessageCount = %d after refused posts", n)
	}
}

func TestPatchAndSubscriptions(t *testing.T) {
	s := start(t, Config{Seed: 3})
	for _, u := range []string{s.C2SBaseURL + "/integration/leads/" + ContractLeadID, s.GatewayURL + "/leads/" + ContractLeadID} {
		r := do(t, "PATCH", u, `{"data":{"type":"lead","attributes":{"description":"patched"}}}`, bearer(s)...)
		if r.status != 200 || !strings.Contains(string(r.body), `"description":"patched"`) {
			t.Errorf("PATCH %s: %d %s", u, r.status, r.body)
		}
	}
	if r := do(t, "PATCH", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, `{}`, bearer(s)...); r.status != 422 {
		t.Errorf("PATCH without attributes: %d", r.status)
	}
	if p := s.C2S.Patches(ContractLeadID); p["description"] != "patched" {
		t.Errorf("Patches = %v", p)
	}
	sub := s.C2SBaseURL + "/integration/leads/subscribe"
	tests := []struct {
		url, body string
		status    int
		want      string
	}{
		{sub, `{"hook_url":"http://x/h?token=1","hook_action":"on_create_lead"}`, 200, `{"success":true,"message":"Subscribed successfully"}`},
		{sub, `{"hook_url":"http://x/h?token=1","hook_action":"on_update_lead"}`, 200, `{"success":true,"message":"Subscribed successfully"}`},
		{sub, `{"hook_url":"http://x/h","hook_action":"on_delete_lead"}`, 422, `{"success":false,"msg":"hook_action not found"}`},
		{s.C2SBaseURL + "/integration/leads/unsubscribe", `{"hook_url":"http://x/h?token=1","hook_action":"on_create_lead"}`, 200, `{"success":true,"message":"Unsubscribed successfully"}`},
		{s.C2SBaseURL + "/integration/leads/unsubscribe", `{"hook_action":"bogus"}`, 422, `{"success":false,"msg":"hook_action not found"}`},
	}
	for _, tc := range tests {
		r := do(t, "POST", tc.url, tc.body, bearer(s)...)
		if r.status != tc.status {
			t.Errorf("%s %s: status %d", tc.url, tc.body, r.status)
		}
		jsonEqual(t, r.body, []byte(tc.want))
	}
	subs := s.C2S.Subscriptions()
	if len(subs) != 1 || subs[0].HookAction != "on_update_lead" {
		t.Errorf("Subscriptions = %+v", subs)
	}
	var viaHTTP []Subscription
	json.Unmarshal(do(t, "GET", s.C2SBaseURL+"/_sim/subscriptions", "").body, &viaHTTP)
	if len(viaHTTP) != 1 {
		t.Errorf("/_sim/subscriptions = %+v", viaHTTP)
	}
}

func TestDiretrixLookups(t *testing.T) {
	s := start(t, Config{Seed: 4})
	tests := []struct {
		name, kind, key string
		status          int
		want            string
	}{
		{"unknown phone", "Telefone", "11900000001", 200, `[]`},
		{"phone with country code does not match", "Telefone", "5511987650123", 200, `[]`},
		{"non-digit phone", "Telefone", "(11) 9", 400, ""},
		{"email any case", "Email", " Helena.Duarte@Example.com", 200, string(contracts.Read("diretrix/email.json"))},
		{"secondary email", "Email", "h.marques.duarte@example.com", 200, `[{"nome":"HELENA MARQUES DUARTE","cpf":"31860457207"}]`},
		{"landline", "Telefone", "1133021234", 200, `[{"nome":"HELENA MARQUES DUARTE","cpf":"31860457207"}]`},
		{"unknown email", "Email", "nobody@example.com", 200, `[]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.diretrixGet(t, tc.kind, tc.key)
			if r.status != tc.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tc.want != "" {
				jsonEqual(t, r.body, []byte(tc.want))
			}
		})
	}
	s404 := start(t, Config{Seed: 4, DiretrixNotFound404: true})
	if r := s404.diretrixGet(t, "Email", "nobody@example.com"); r.status != 404 {
		t.Errorf("DiretrixNotFound404: %d", r.status)
	}
}

func TestWorkAPIModules(t *testing.T) {
	s := start(t, Config{Seed: 5})
	tests := []struct {
		modulo, consulta string
		status           int
		want             string // exact JSON, or a substring when prefixed with ~
	}{
		{"phone", "5511987650123", 200, `{"msg":[{"cpf_cnpj":"00031860457207","nome":"HELENA MARQUES DUARTE"},{"cpf_cnpj":"00074291506325","nome":"OTAVIO PRADO LINS"}]}`},
		{"email", HelenaEmail, 200, `{"msg":[{"cpf_cnpj":"00031860457207","nome":"HELENA MARQUES DUARTE"}]}`},
		{"phone", "11900000001", 200, `{"msg":[]}`},
		{"cpf", "11144477735", 200, `{"erro":"CPF não encontrado"}`},
		{"cpf", "12345678900", 200, `{"erro":"CPF inválido"}`},
		{"cnpj", "73820146000157", 200, `~"socios":[{"nome":"HELENA MARQUES DUARTE"`},
		{"cep", "01000900", 200, `{"cep":"01000900","tipoLogradouro":"R","logradouro":"DAS PALMEIRAS FICTICIAS","bairro":"JARDIM EXEMPLO","cidade":"SAO PAULO","uf":"SP"}`},
		{"nome", "helena marques", 200, `~"cpf_cnpj":"00031860457207"`},
		{"mae", "ROSANA MARQUES", 200, `~"nome":"HELENA MARQUES DUARTE"`},
		{"titulo", "123", 403, `{"status":403,"statusMsg":"Forbidden","reason":"Módulo titulo inexistente para a rota"}`},
		{"foo", "123", 403, `~inexistente para a rota`},
	}
	for _, tc := range tests {
		t.Run(tc.modulo+"/"+tc.consulta, func(t *testing.T) {
			r := do(t, "GET", s.workURL(tc.modulo, tc.consulta), "")
			if r.status != tc.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if w, ok := strings.CutPrefix(tc.want, "~"); ok {
				if !strings.Contains(string(r.body), w) {
					t.Errorf("%s lacks %s", r.body, w)
				}
				return
			}
			jsonEqual(t, r.body, []byte(tc.want))
		})
	}
	if n := s.WorkAPI.TotalPaidCalls(); n != 0 {
		t.Errorf("non-person answers were paid: %d", n)
	}
	// The root path answers too.
	root := strings.TrimSuffix(s.WorkAPIURL, "/api") + "/?" + url.Values{"token": {s.Config.WorkToken}, "modulo": {"cpf"}, "consulta": {HelenaCPF}}.Encode()
	if r := do(t, "GET", root, ""); !strings.Contains(string(r.body), `"DadosBasicos"`) {
		t.Errorf("root: %s", r.body)
	}
}

func TestRecordingAndPaid(t *testing.T) {
	s := start(t, Config{Seed: 6})
	p := s.Pop.People()[10]
	for range 3 {
		do(t, "GET", s.workURL("cpf", p.CPF), "")
	}
	do(t, "GET", s.workURL("cpf", HelenaCPF), "")
	do(t, "GET", s.workURL("cpf", "11144477735"), "")                          // not found: free
	do(t, "GET", s.WorkAPIURL+"?token=bad&modulo=cpf&consulta="+HelenaCPF, "") // refused: free
	if got := s.WorkAPI.PaidCalls(p.CPF); got != 3 {
		t.Errorf("PaidCalls = %d", got)
	}
	if got := s.WorkAPI.TotalPaidCalls(); got != 4 {
		t.Errorf("TotalPaidCalls = %d", got)
	}
	reqs := s.WorkAPI.Requests()
	if len(reqs) != 6 || s.WorkAPI.RequestCount() != 6 {
		t.Fatalf("requests = %d", len(reqs))
	}
	for _, r := range reqs {
		if strings.Contains(r.Path, "token") || strings.Contains(r.Path, s.Config.WorkToken) {
			t.Errorf("secret in log: %s", r.Path)
		}
		if r.Method != "GET" || r.Status != 200 || r.Time.IsZero() {
			t.Errorf("request = %+v", r)
		}
	}
	if reqs[5].Fault != "bad_token" {
		t.Errorf("last fault = %q", reqs[5].Fault)
	}
	// Over HTTP.
	var paid struct {
		Total int64          `json:"total"`
		ByCPF map[string]int `json:"by_cpf"`
	}
	json.Unmarshal(do(t, "GET", s.WorkAPIURL[:strings.LastIndex(s.WorkAPIURL, "/")]+"/_sim/paid", "").body, &paid)
	if paid.Total != 4 || paid.ByCPF[p.CPF] != 3 || paid.ByCPF[HelenaCPF] != 1 {
		t.Errorf("/_sim/paid = %+v", paid)
	}
	one := do(t, "GET", s.WorkAPIURL[:strings.LastIndex(s.WorkAPIURL, "/")]+"/_sim/paid?cpf="+p.CPF, "")
	jsonEqual(t, one.body, []byte(`{"cpf":"`+p.CPF+`","calls":3,"lost":0}`))
	var log struct {
		Total    int64     `json:"total"`
		Requests []Request `json:"requests"`
	}
	json.Unmarshal(do(t, "GET", s.DiretrixBaseURL+"/_sim/requests", "").body, &log)
	if log.Total != 0 {
		t.Errorf("diretrix saw %d requests", log.Total)
	}
	s.diretrixGet(t, "Telefone", HelenaPhone)
	json.Unmarshal(do(t, "GET", s.DiretrixBaseURL+"/_sim/requests?limit=1", "").body, &log)
	if log.Total != 1 || len(log.Requests) != 1 || log.Requests[0].Path != "/Consultas/Pessoa/Telefone/"+HelenaPhone {
		t.Errorf("/_sim/requests = %+v", log)
	}
	// Messages over HTTP, and gateway calls marked in the C2S log.
	do(t, "POST", s.GatewayURL+"/leads/"+ContractLeadID+"/messages", `{"message":"oi"}`)
	var msgs []Message
	json.Unmarshal(do(t, "GET", s.GatewayURL+"/_sim/messages?lead="+ContractLeadID, "").body, &msgs)
	if len(msgs) != 1 || msgs[0].Body != "oi" || msgs[0].Route != "gateway" {
		t.Errorf("/_sim/messages = %+v", msgs)
	}
	if c := s.C2S.Requests(); len(c) != 1 || c[0].Via != "gateway" || c[0].Status != 201 {
		t.Errorf("c2s log = %+v", c)
	}
	// Reset clears recordings; the admin endpoint does the same per simulator.
	s.Reset()
	if s.WorkAPI.TotalPaidCalls() != 0 || s.WorkAPI.PaidCalls(p.CPF) != 0 || len(s.WorkAPI.Requests()) != 0 || len(s.C2S.Messages(ContractLeadID)) != 0 {
		t.Error("Reset left recordings")
	}
	if r := do(t, "GET", s.C2SBaseURL+"/integration/leads/"+ContractLeadID, "", bearer(s)...); !bytes.Equal(r.body, contracts.Read("c2s/lead.json")) {
		t.Error("lead document kept messages after Reset")
	}
	s.diretrixGet(t, "Telefone", HelenaPhone)
	if r := do(t, "POST", s.DiretrixBaseURL+"/_sim/reset", ""); r.status != 204 || s.Diretrix.RequestCount() != 0 {
		t.Errorf("/_sim/reset: %d, count %d", r.status, s.Diretrix.RequestCount())
	}
}

func TestRequestRing(t *testing.T) {
	s := New(Config{People: -1, MaxRequests: 3})
	for i := range 5 {
		req, _ := http.NewRequest("GET", "/x"+string(rune('0'+i)), nil)
		s.Diretrix.rec.add(req, time.Now(), 200, "", 0)
	}
	got := s.Diretrix.Requests()
	if len(got) != 3 || got[0].Path != "/x2" || got[2].Path != "/x4" || s.Diretrix.RequestCount() != 5 {
		t.Errorf("ring = %+v", got)
	}
}

func TestAdminFaults(t *testing.T) {
	s := start(t, Config{Seed: 8})
	u := s.GatewayURL + "/_sim/faults"
	r := do(t, "PUT", u, `{"error_rate":0.5,"latency_min":"10ms","latency_max":20,"burst_429":2,"retry_after":"1 minute"}`)
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	want := Faults{ErrorRate: 0.5, LatencyMin: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond, Burst429: 2, RetryAfter: "1 minute"}
	if got := s.Gateway.Faults(); got != want {
		t.Errorf("after PUT %+v", got)
	}
	do(t, "PATCH", u, `{"down":true}`)
	want.Down = true
	if got := s.Gateway.Faults(); got != want {
		t.Errorf("after PATCH %+v", got)
	}
	var viaGet Faults
	json.Unmarshal(do(t, "GET", u, "").body, &viaGet)
	if viaGet != want {
		t.Errorf("GET = %+v", viaGet)
	}
	if r := do(t, "PUT", u, `{"latency_min":"soon"}`); r.status != 400 {
		t.Errorf("bad duration: %d", r.status)
	}
	do(t, "DELETE", u, "")
	if got := s.Gateway.Faults(); got != (Faults{}) {
		t.Errorf("after DELETE %+v", got)
	}
	// Admin calls are neither faulted nor logged.
	s.Gateway.SetFaults(Faults{Down: true})
	if r := do(t, "GET", u, ""); r.status != 200 || s.Gateway.RequestCount() != 0 {
		t.Errorf("admin under Down: %d, logged %d", r.status, s.Gateway.RequestCount())
	}
}

func TestFaultModes(t *testing.T) {
	s := start(t, Config{Seed: 9})
	type target struct {
		name string
		c    Controls
		url  string
		hdr  []string
	}
	targets := []target{
		{"c2s", s.C2S, s.C2SBaseURL + "/integration/leads/" + ContractLeadID, bearer(s)},
		{"gateway", s.Gateway, s.GatewayURL + "/leads/" + ContractLeadID, nil},
		{"diretrix", s.Diretrix, s.DiretrixBaseURL + "/Consultas/Pessoa/Telefone/" + HelenaPhone,
			[]string{"Authorization", "Basic " + "ZGlyZXRyaXg6ZGlyZXRyaXgtcGFzcw=="}},
		{"workapi", s.WorkAPI, s.workURL("cpf", OtavioCPF), nil},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Cleanup(tg.c.ClearFaults)
			if r := do(t, "GET", tg.url, "", tg.hdr...); r.status != 200 || !json.Valid(r.body) {
				t.Fatalf("healthy: %d %s", r.status, r.body)
			}
			tg.c.SetFaults(Faults{ErrorRate: 1, ErrorStatus: 503})
			if r := do(t, "GET", tg.url, "", tg.hdr...); r.status != 503 {
				t.Errorf("error: %d", r.status)
			}
			tg.c.SetFaults(Faults{Burst429: 2, RetryAfter: "7"})
			for i := range 3 {
				r := do(t, "GET", tg.url, "", tg.hdr...)
				if want := []int{429, 429, 200}[i]; r.status != want {
					t.Errorf("burst #%d: %d, want %d", i, r.status, want)
				}
				if i < 2 && r.header.Get("Retry-After") != "7" {
					t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
				}
			}
			tg.c.SetFaults(Faults{MalformedRate: 1})
			if r := do(t, "GET", tg.url, "", tg.hdr...); r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
				t.Errorf("malformed: %d %q", r.status, r.body)
			}
			tg.c.SetFaults(Faults{Down: true})
			req, _ := http.NewRequest("GET", tg.url, nil)
			for i := 0; i+1 < len(tg.hdr); i += 2 {
				req.Header.Set(tg.hdr[i], tg.hdr[i+1])
			}
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
				t.Errorf("down: got status %d, want a connection error", res.StatusCode)
			}
			tg.c.SetFaults(Faults{Down: true, DownStatus: 503})
			if r := do(t, "GET", tg.url, "", tg.hdr...); r.status != 503 {
				t.Errorf("down 503: %d", r.status)
			}
			tg.c.SetFaults(Faults{HangRate: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			req, _ = http.NewRequestWithContext(ctx, "GET", tg.url, nil)
			for i := 0; i+1 < len(tg.hdr); i += 2 {
				req.Header.Set(tg.hdr[i], tg.hdr[i+1])
			}
			if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("hang: err %v", err)
			}
			tg.c.SetFaults(Faults{LatencyMin: 30 * time.Millisecond})
			t0 := time.Now()
			if r := do(t, "GET", tg.url, "", tg.hdr...); r.status != 200 || time.Since(t0) < 30*time.Millisecond {
				t.Errorf("latency: %d after %v", r.status, time.Since(t0))
			}
			tg.c.ClearFaults()
			faults := map[string]int{}
			for _, r := range tg.c.Requests() {
				faults[r.Fault]++
			}
			for _, f := range []string{"error", "429", "malformed", "down", "hang"} {
				if faults[f] == 0 {
					t.Errorf("no %q in the log: %v", f, faults)
				}
			}
		})
	}
}

func TestWorkAPIModes(t *testing.T) {
	s := start(t, Config{Seed: 10, Faults: FaultSet{WorkAPI: Faults{TokenExpired: true}}})
	u := s.workURL("cpf", HelenaCPF)
	if r := do(t, "GET", u, ""); r.status != 200 || !bytes.Equal(r.body, contracts.Read("workapi/error_token.json")) {
		t.Errorf("token expired: %d %s", r.status, r.body)
	}
	s.WorkAPI.SetFaults(Faults{OutOfCredits: true})
	if r := do(t, "GET", u, ""); r.status != 200 || !bytes.Equal(r.body, contracts.Read("workapi/error_credits.json")) {
		t.Errorf("out of credits: %d %s", r.status, r.body)
	}
	s.WorkAPI.ClearFaults()
	jsonEqual(t, do(t, "GET", u, "").body, contracts.Read("workapi/cpf.json"))
	if got := s.WorkAPI.TotalPaidCalls(); got != 1 {
		t.Errorf("paid = %d, want only the healthy call", got)
	}
	if rs := s.WorkAPI.Requests(); rs[0].Fault != "token_expired" || rs[1].Fault != "out_of_credits" || rs[2].Fault != "" {
		t.Errorf("faults logged: %+v", rs)
	}
}

func TestGatewayMapsC2SFailures(t *testing.T) {
	s := start(t, Config{Seed: 11, GatewayTimeout: 50 * time.Millisecond})
	u := s.GatewayURL + "/leads/" + ContractLeadID
	tests := []struct {
		name   string
		f      Faults
		status int
		retry  string
	}{
		{"c2s 500 is 502", Faults{ErrorRate: 1}, 502, ""},
		{"c2s 429 passes Retry-After", Faults{Burst429: 1, RetryAfter: "1 minute"}, 429, "1 minute"},
		{"c2s malformed is 502", Faults{MalformedRate: 1}, 502, ""},
		{"c2s down is 502", Faults{Down: true}, 502, ""},
		{"c2s hang is 502 after the gateway timeout", Faults{HangRate: 1}, 502, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.C2S.SetFaults(tc.f)
			defer s.C2S.ClearFaults()
			r := do(t, "GET", u, "")
			if r.status != tc.status || r.header.Get("Retry-After") != tc.retry {
				t.Errorf("%d Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			if _, ok := decode(t, r.body).(map[string]any)["detail"]; !ok {
				t.Errorf("not FastAPI-shaped: %s", r.body)
			}
		})
	}
}

func TestFaultsReproducible(t *testing.T) {
	seq := func(seed uint64) []faultKind {
		in := newInjector(seed, Faults{ErrorRate: 0.3, MalformedRate: 0.3, LatencyMin: time.Millisecond, LatencyMax: 5 * time.Millisecond}, nil)
		var out []faultKind
		for range 200 {
			d := in.decide()
			if d.latency < time.Millisecond || d.latency > 5*time.Millisecond {
				t.Fatalf("latency %v out of range", d.latency)
			}
			out = append(out, d.kind)
		}
		return out
	}
	a, b, c := seq(1), seq(1), seq(2)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different faults")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds, same faults")
	}
	n := 0
	for _, k := range a {
		if k == faultError {
			n++
		}
	}
	if n < 30 || n > 90 {
		t.Errorf("%d errors in 200 at rate 0.3", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := start(t, Config{Seed: 13})
	leads := s.Pop.Leads()
	const workers, posts = 8, 25
	done := make(chan error, workers)
	for w := range workers {
		go func() {
			lead := leads[w].ID
			for i := range posts {
				var err error
				body := strings.Repeat("x", w+1) + string(rune('a'+i))
				req, _ := http.NewRequest("POST", s.GatewayURL+"/leads/"+lead+"/messages", strings.NewReader(`{"message":"`+body+`"}`))
				if i%2 == 0 {
					req, _ = http.NewRequest("POST", s.C2SBaseURL+"/integration/leads/"+lead+"/create_message", strings.NewReader(`{"body":"`+body+`"}`))
					req.Header.Set("Authorization", "Bearer "+s.Config.C2SToken)
				}
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					res.Body.Close()
					if res.StatusCode != 201 {
						err = errors.New(res.Status)
					}
				}
				if err == nil { // reads race with other workers' writes
					req, _ = http.NewRequest("GET", s.GatewayURL+"/leads/"+leads[(w+1)%workers].ID, nil)
					if res, err = http.DefaultClient.Do(req); err == nil {
						res.Body.Close()
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range workers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.C2S.MessageCount(); n != workers*posts {
		t.Fatalf("MessageCount = %d", n)
	}
	for w := range workers {
		m := s.C2S.Messages(leads[w].ID)
		for i, x := range m {
			if x.Body != strings.Repeat("x", w+1)+string(rune('a'+i)) {
				t.Fatalf("lead %d message %d = %q: order lost", w, i, x.Body)
			}
			if want := map[bool]string{true: "direct", false: "gateway"}[i%2 == 0]; x.Route != want {
				t.Fatalf("route %q, want %q", x.Route, want)
			}
		}
	}
}

func TestStartStopsWithContext(t *testing.T) {
	s := New(Config{People: -1})
	ctx, cancel := context.WithCancel(context.Background())
	u, err := s.Start(ctx, Addrs{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(u.WorkAPIURL, "/api") || u.C2SBaseURL == "" || strings.HasSuffix(u.C2SBaseURL, "/integration") {
		t.Errorf("URLs = %+v", u)
	}
	if r := do(t, "GET", u.GatewayURL+"/", ""); r.status != 200 {
		t.Fatalf("health %d", r.status)
	}
	cancel()
	select {
	case <-s.stop:
	case <-time.After(5 * time.Second):
		t.Fatal("ctx end did not close the simulators")
	}
	if s.Close() != nil {
		t.Error("second Close failed")
	}
}
