package workapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/contracts"
)

const (
	token  = "wk+TOKEN/s3cr3t&x" // needs escaping: the escaped form must not leak either
	helena = "31860457207"
	otavio = "74291506325"
)

// fakeWork serves the contract persons by consulta, or a forced answer.
type fakeWork struct {
	mu     sync.Mutex
	hits   atomic.Int32
	status int
	body   string
	query  map[string]string
}

func (f *fakeWork) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	q := r.URL.Query()
	f.mu.Lock()
	f.query = map[string]string{"token": q.Get("token"), "modulo": q.Get("modulo"), "consulta": q.Get("consulta")}
	status, body := f.status, f.body
	f.mu.Unlock()
	if q.Get("token") != token {
		_, _ = w.Write(contracts.Read("workapi/error_token.json"))
		return
	}
	if status != 0 || body != "" {
		if status == 0 {
			status = 200
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	switch q.Get("consulta") {
	case helena:
		_, _ = w.Write(contracts.Read("workapi/cpf.json"))
	case otavio:
		_, _ = w.Write(contracts.Read("workapi/cpf_sparse.json"))
	default:
		_, _ = w.Write([]byte(`{"erro":"CPF não encontrado"}`))
	}
}

func (f *fakeWork) set(status int, body string) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

func newClient(t testing.TB, h http.Handler, p httpx.Policy, s *httpxtest.Sleeper, tok string) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL + "/api", Token: tok, Policy: p, Options: httpxtest.Options(s, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("missing token accepted")
	}
	c, err := New(Config{Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Caller().Policy()
	if c.url != DefaultURL || p.Rate != 0.5 || p.Burst != 1 || p.Timeout != 45*time.Second || p.MaxConcurrent != 2 {
		t.Fatalf("defaults: %s %+v", c.url, p)
	}
}

func TestCPFContract(t *testing.T) {
	f := &fakeWork{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, token)
	// A slice, not a map: the query checked below is the last call's.
	for _, tc := range []struct{ cpf, file string }{{"318.604.572-07", "workapi/cpf.json"}, {otavio, "workapi/cpf_sparse.json"}} {
		cpf, file := tc.cpf, tc.file
		r, err := c.CPF(context.Background(), cpf)
		if err != nil {
			t.Fatalf("%s: %v", cpf, err)
		}
		if !bytes.Equal(r.Raw, contracts.Read(file)) {
			t.Fatalf("%s: raw payload not kept whole", cpf)
		}
	}
	if f.query["modulo"] != "cpf" || f.query["consulta"] != otavio || f.query["token"] != token {
		t.Fatalf("query = %v", f.query)
	}
}

func TestCPFAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		kind   failure.Kind
		err    error
		hits   int32
	}{
		{"token", 200, string(contracts.Read("workapi/error_token.json")), failure.KindUnauthorized, ErrToken, 1},
		{"token http 403", 403, string(contracts.Read("workapi/error_token.json")), failure.KindUnauthorized, ErrToken, 1},
		{"credits", 200, string(contracts.Read("workapi/error_credits.json")), failure.KindCreditsExhausted, ErrCredits, 1},
		{"credits http 429", 429, string(contracts.Read("workapi/error_credits.json")), failure.KindCreditsExhausted, ErrCredits, 1},
		{"erro", 200, `{"erro":"CPF não encontrado"}`, failure.KindPermanent, ErrLookup, 1},
		{"erro null", 200, `{"erro":null}`, failure.KindPermanent, ErrLookup, 1},
		{"no DadosBasicos", 200, `{"status":200}`, failure.KindPermanent, ErrNoPerson, 1},
		{"DadosBasicos without cpf", 200, `{"DadosBasicos":{"nome":"X","cpf":null}}`, failure.KindPermanent, ErrNoPerson, 1},
		{"DadosBasicos wrong type", 200, `{"DadosBasicos":"x"}`, failure.KindPermanent, ErrNoPerson, 1},
		{"array", 200, `[1,2]`, failure.KindPermanent, ErrNoPerson, 1},
		{"other person", 200, `{"DadosBasicos":{"cpf":"74291506325"}}`, failure.KindPermanent, ErrWrongPerson, 1},
		{"module off", 403, `{"message":"Módulo cpf inexistente para a rota"}`, failure.KindPermanent, ErrModuleOff, 1},
		{"html 200", 200, `<html>oops</html>`, failure.KindTransient, ErrNotJSON, 1},
		{"500 retried", 500, `{"erro":"x"}`, failure.KindTransient, nil, 4},
		{"502 token text still transient", 502, `{"message":"token"}`, failure.KindTransient, nil, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeWork{}
			f.set(tc.status, tc.body)
			c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, token)
			r, err := c.CPF(context.Background(), helena)
			if failure.KindOf(err) != tc.kind || (tc.err != nil && !errors.Is(err, tc.err)) || r.Raw != nil {
				t.Fatalf("err = %v, want %v/%v", err, tc.kind, tc.err)
			}
			if f.hits.Load() != tc.hits {
				t.Fatalf("hits = %d, want %d", f.hits.Load(), tc.hits)
			}
			assertNoToken(t, err)
		})
	}
}

func TestNumericCPFInAnswer(t *testing.T) {
	f := &fakeWork{}
	f.set(200, `{"DadosBasicos":{"cpf":31860457207}}`)
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, token)
	if _, err := c.CPF(context.Background(), helena); err != nil {
		t.Fatal(err)
	}
}

func TestWrongTokenIsUnauthorized(t *testing.T) {
	f := &fakeWork{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, "bad-token")
	_, err := c.CPF(context.Background(), helena)
	if failure.KindOf(err) != failure.KindUnauthorized || failure.ShouldNack(err) || f.hits.Load() != 1 {
		t.Fatalf("err=%v hits=%d", err, f.hits.Load())
	}
}

func TestInvalidCPFNeverPaid(t *testing.T) {
	f := &fakeWork{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, token)
	for _, cpf := range []string{"", "31860457208", "11111111111", "abc"} {
		if _, err := c.CPF(context.Background(), cpf); !errors.Is(err, ErrInvalidCPF) || failure.KindOf(err) != failure.KindPermanent {
			t.Fatalf("%q: %v", cpf, err)
		}
	}
	if f.hits.Load() != 0 {
		t.Fatal("invalid CPF was sent")
	}
}

func TestModule(t *testing.T) {
	f := &fakeWork{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, token)
	phoneAnswer := `{"msg":[{"cpf_cnpj":"00074291506325","nome":"OTAVIO PRADO LINS"}]}`
	f.set(200, phoneAnswer)
	status, body, err := c.Module(context.Background(), "Phone", "11912340987")
	if err != nil || status != 200 || string(body) != phoneAnswer || f.query["modulo"] != "phone" || f.query["consulta"] != "11912340987" {
		t.Fatalf("%d %s %v %v", status, body, err, f.query)
	}
	f.set(200, `{"erro":"nada"}`) // lookup errors pass through
	if status, body, err := c.Module(context.Background(), "cep", "01000-900"); err != nil || status != 200 || string(body) != `{"erro":"nada"}` {
		t.Fatalf("%d %s %v", status, body, err)
	}
	f.set(403, `{"message":"Módulo titulo inexistente para a rota"}`)
	if status, _, err := c.Module(context.Background(), "titulo", "123"); status != 403 || !errors.Is(err, ErrModuleOff) {
		t.Fatalf("%d %v", status, err)
	}
	f.set(200, string(contracts.Read("workapi/error_credits.json")))
	if status, _, err := c.Module(context.Background(), "nome", "x"); status != 200 || failure.KindOf(err) != failure.KindCreditsExhausted {
		t.Fatalf("%d %v", status, err)
	}
	before := f.hits.Load()
	for _, m := range []string{"", "cpf&token=x", "ssn", "../cpf"} {
		if _, _, err := c.Module(context.Background(), m, "x"); !errors.Is(err, ErrUnknownModule) {
			t.Fatalf("module %q: %v", m, err)
		}
	}
	if _, _, err := c.Module(context.Background(), "cep", " "); !errors.Is(err, ErrEmptyQuery) || f.hits.Load() != before {
		t.Fatalf("empty consulta: %v", err)
	}
}

func TestFaults(t *testing.T) {
	t.Run("default pace: second call waits 2s", func(t *testing.T) {
		p := httpx.WorkAPIPolicy()
		s := &httpxtest.Sleeper{}
		c := newClient(t, &fakeWork{}, p, s, token)
		for i := 0; i < 2; i++ {
			if _, err := c.CPF(context.Background(), helena); err != nil {
				t.Fatal(err)
			}
		}
		if w := s.Waits(); len(w) != 1 || w[0] != 2*time.Second {
			t.Fatalf("waits = %v", w)
		}
	})
	t.Run("retry-after honoured", func(t *testing.T) {
		var hits atomic.Int32
		s := &httpxtest.Sleeper{}
		c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(429)
				return
			}
			_, _ = w.Write(contracts.Read("workapi/cpf.json"))
		}), httpxtest.Policy(), s, token)
		if _, err := c.CPF(context.Background(), helena); err != nil || len(s.Waits()) != 1 || s.Waits()[0] != 5*time.Second {
			t.Fatalf("%v %v", err, s.Waits())
		}
	})
	t.Run("breaker: credits do not trip, 5xx do", func(t *testing.T) {
		f := &fakeWork{}
		p := httpxtest.Policy()
		p.MaxRetries = 0
		p.BreakerFailures = 3
		p.BreakerOpenFor = 20 * time.Millisecond
		c := newClient(t, f, p, &httpxtest.Sleeper{}, token)
		f.set(200, string(contracts.Read("workapi/error_credits.json")))
		for i := 0; i < 5; i++ {
			_, _ = c.CPF(context.Background(), helena)
		}
		f.set(404, ``)
		for i := 0; i < 5; i++ {
			_, _ = c.CPF(context.Background(), helena)
		}
		if c.Caller().BreakerState() != "closed" {
			t.Fatal("credits/404 opened the breaker")
		}
		f.set(503, ``)
		for i := 0; i < 6; i++ {
			_, _ = c.CPF(context.Background(), helena)
		}
		if f.hits.Load() != 13 {
			t.Fatalf("hits = %d, want 10 + 3", f.hits.Load())
		}
		f.set(0, "")
		for deadline := time.Now().Add(5 * time.Second); c.Caller().BreakerState() != "half-open"; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("never half-opened")
			}
		}
		if _, err := c.CPF(context.Background(), helena); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("token absent from transport errors", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, _ := New(Config{URL: srv.URL, Token: token, Policy: httpxtest.Policy(), Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
		_, err := c.CPF(context.Background(), helena)
		if failure.KindOf(err) != failure.KindTransient {
			t.Fatal(err)
		}
		assertNoToken(t, err)
		if strings.Contains(err.Error(), helena) {
			t.Fatalf("CPF leaked: %v", err)
		}
		_, _, err = c.Module(context.Background(), "email", "helena.duarte@example.com")
		assertNoToken(t, err)
	})
	t.Run("timeout is transient", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		var hits atomic.Int32
		p := httpxtest.Policy()
		p.Timeout = 20 * time.Millisecond
		p.MaxRetries = 1
		c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}), p, &httpxtest.Sleeper{}, token)
		_, err := c.CPF(context.Background(), helena)
		if failure.KindOf(err) != failure.KindTransient || hits.Load() != 2 {
			t.Fatalf("%v hits=%d", err, hits.Load())
		}
		assertNoToken(t, err)
	})
}

func assertNoToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{token, "s3cr3t", "token="} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks %q: %v", s, err)
		}
	}
}

func FuzzClassifyWorkAPI(f *testing.F) {
	for _, name := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json", "workapi/error_credits.json", "workapi/error_token.json"} {
		f.Add(200, contracts.Read(name))
	}
	f.Add(403, []byte(`"Módulo cep inexistente para a rota"`))
	f.Add(500, []byte(`{"status":"403","code":"429"}`))
	f.Add(200, []byte(`{"DadosBasicos":{"cpf":1e999},"erro":[]}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := Classify(status, body)
		if err != nil && failure.KindOf(err).String() == "" {
			t.Fatal("unclassified")
		}
		if err == nil && (status < 200 || status > 299) {
			t.Fatalf("status %d accepted as a person", status)
		}
	})
}

func TestClassifyContracts(t *testing.T) {
	cases := map[string]failure.Kind{
		"workapi/error_credits.json": failure.KindCreditsExhausted,
		"workapi/error_token.json":   failure.KindUnauthorized,
	}
	for name, kind := range cases {
		if err := Classify(200, contracts.Read(name)); failure.KindOf(err) != kind {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json"} {
		if err := Classify(200, contracts.Read(name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func BenchmarkCPF(b *testing.B) {
	p := httpxtest.Policy()
	c := newClient(b, &fakeWork{}, p, &httpxtest.Sleeper{}, token)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.CPF(ctx, helena); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// A paid call reuses its connection, and is never resent by Go's transport
// when a reused connection breaks after the request was written: the
// attempts ledger must see every call that may have reached the API.
func TestPaidCallsReuseConnectionsAndAreNeverResentByTheTransport(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	person := string(contracts.Read("workapi/cpf.json"))
	var requests, conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if req.Method != http.MethodGet || req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
						_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					if requests.Add(1) == 2 {
						return // the second call: received, then the connection breaks
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(person), person)
				}
			}(c)
		}
	}()
	p := httpxtest.Policy()
	p.MaxRetries, p.PaidCalls = 0, true
	c, err := New(Config{URL: "http://" + ln.Addr().String() + "/api", Token: token, Policy: p, Options: httpxtest.Options(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CPF(context.Background(), helena); err != nil {
		t.Fatalf("first call: %v", err)
	}
	_, err = c.CPF(context.Background(), helena)
	if err == nil {
		t.Fatal("the second call succeeded: the transport resent it on a new connection")
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("the API received %d calls for 2 made (a resent paid call is charged twice)", n)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 2 calls: paid calls do not reuse connections", n)
	}
	if _, err := c.CPF(context.Background(), helena); err != nil {
		t.Fatalf("third call, on a new connection: %v", err)
	}
}

// A person's answer is decoded once: the classifier's probe, left on the
// response, is what the person check reads.
func TestThePersonCheckReadsTheClassifiersProbe(t *testing.T) {
	r := &httpx.Response{Status: 200, Header: http.Header{}, Body: contracts.Read("workapi/cpf.json")}
	if err := classifyHTTP("workapi.cpf", r); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Decoded.(probe); !ok {
		t.Fatalf("the classifier left %T on the response, want its probe", r.Decoded)
	}
	// The body changes under the probe: the check must not decode it again.
	r.Body = []byte(`not json`)
	if err := personError("workapi.cpf", r, "31860457207"); err != nil {
		t.Fatalf("the person check decoded the body again: %v", err)
	}
	if err := personError("workapi.cpf", r, "74291506325"); !errors.Is(err, ErrWrongPerson) {
		t.Fatalf("err = %v, want ErrWrongPerson from the probe's CPF", err)
	}
	// Without a probe it decodes the body itself.
	r.Decoded = nil
	if err := personError("workapi.cpf", r, ""); !errors.Is(err, ErrNotJSON) {
		t.Fatalf("err = %v, want ErrNotJSON", err)
	}
}
