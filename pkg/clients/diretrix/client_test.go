package diretrix

import (
	"context"
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
	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

const (
	user = "leadflow"
	pass = "dtx-PASS-s3cr3t"
)

// fakeDiretrix serves phone.json for one phone and email.json for one email,
// and records the escaped path it saw.
type fakeDiretrix struct {
	mu     sync.Mutex
	hits   atomic.Int32
	status int
	body   string
	path   string
}

func (f *fakeDiretrix) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	f.path = r.URL.EscapedPath()
	status, body := f.status, f.body
	f.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
		w.WriteHeader(401)
		return
	}
	if status != 0 {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	if body != "" {
		_, _ = w.Write([]byte(body))
		return
	}
	switch r.URL.EscapedPath() {
	case "/Consultas/Pessoa/Telefone/11987650123":
		_, _ = w.Write(contracts.Read("diretrix/phone.json"))
	case "/Consultas/Pessoa/Email/helena.duarte@example.com":
		_, _ = w.Write(contracts.Read("diretrix/email.json"))
	default:
		_, _ = w.Write([]byte(`[]`))
	}
}

func (f *fakeDiretrix) set(status int, body string) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

func newClient(t testing.TB, h http.Handler, p httpx.Policy, s *httpxtest.Sleeper, password string) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, User: user, Pass: password, Policy: p, Options: httpxtest.Options(s, nil)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var helena = Match{CPF: "31860457207", Name: "HELENA MARQUES DUARTE"}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{{}, {BaseURL: "http://x", User: "u"}, {BaseURL: "x", User: "u", Pass: "p"}} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("accepted %+v", cfg)
		}
	}
	c, err := New(Config{BaseURL: "http://dtx/", User: "u", Pass: "p"})
	if err != nil || c.Caller().Policy() != httpx.DiretrixPolicy() {
		t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	f := &fakeDiretrix{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, pass)
	cases := []struct {
		name string
		run  func() (Match, error)
		path string
	}{
		{"phone with country code", func() (Match, error) { return c.ByPhone(context.Background(), "+55 (11) 98765-0123") },
			"/Consultas/Pessoa/Telefone/11987650123"},
		{"raw phone", func() (Match, error) { return c.ByPhone(context.Background(), "5511987650123") },
			"/Consultas/Pessoa/Telefone/11987650123"},
		{"email normalised", func() (Match, error) { return c.ByEmail(context.Background(), "  Helena.Duarte@Example.com ") },
			"/Consultas/Pessoa/Email/helena.duarte@example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.run()
			if err != nil || m != helena {
				t.Fatalf("got %+v %v", m, err)
			}
			if f.path != tc.path {
				t.Fatalf("path = %s", f.path)
			}
		})
	}
}

func TestEmailIsPathEscaped(t *testing.T) {
	f := &fakeDiretrix{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, pass)
	_, err := c.ByEmail(context.Background(), "a/b?c#d e@x.com")
	if failure.KindOf(err) != failure.KindNotFound {
		t.Fatal(err)
	}
	if f.path != "/Consultas/Pessoa/Email/a%2Fb%3Fc%23d%20e@x.com" {
		t.Fatalf("path = %s", f.path)
	}
}

func TestAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   Match
		kind   failure.Kind
		ok     bool
		hits   int32
	}{
		{"empty list", 0, `[]`, Match{}, failure.KindNotFound, false, 1},
		{"404", 404, `{"msg":"nada"}`, Match{}, failure.KindNotFound, false, 1},
		{"400", 400, ``, Match{}, failure.KindNotFound, false, 1},
		{"401", 401, ``, Match{}, failure.KindUnauthorized, false, 1},
		{"500 retried", 500, ``, Match{}, failure.KindTransient, false, 4},
		{"no valid candidate", 0, `[{"nome":"X","cpf":"31860457208"},{"nome":"Y","cpf":"11111111111"}]`, Match{}, failure.KindNotFound, false, 1},
		{"skips invalid, null and junk", 0, `[{"nome":"X","cpf":null},7,null,{"nome":"Y"},{"nome":"Z","cpf":"318.604.572-07"}]`,
			Match{CPF: "31860457207", Name: "Z"}, 0, true, 1},
		{"numeric cpf", 0, `[{"nome":"O","cpf":74291506325}]`, Match{CPF: "74291506325", Name: "O"}, 0, true, 1},
		{"numeric cpf lost leading zero", 0, `[{"nome":"L","cpf":` + strings.TrimLeft(leadingZeroCPF, "0") + `}]`,
			Match{CPF: leadingZeroCPF, Name: "L"}, 0, true, 1},
		{"object body", 0, `{"cpf":"31860457207"}`, Match{}, failure.KindNotFound, false, 1},
		{"html body", 0, `<html>gateway</html>`, Match{}, failure.KindTransient, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDiretrix{}
			f.set(tc.status, tc.body)
			c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, pass)
			m, err := c.ByPhone(context.Background(), "11987650123")
			if tc.ok != (err == nil) || (!tc.ok && failure.KindOf(err) != tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if m != tc.want || f.hits.Load() != tc.hits {
				t.Fatalf("match %+v hits %d", m, f.hits.Load())
			}
			if err != nil && (strings.Contains(err.Error(), "11987650123") || strings.Contains(err.Error(), pass)) {
				t.Fatalf("error leaks: %v", err)
			}
		})
	}
}

// leadingZeroCPF is a valid CPF starting with 0.
var leadingZeroCPF = func() string {
	d1, d2 := brdata.CPFCheckDigits("012345678")
	return "012345678" + string([]byte{d1, d2})
}()

func TestWrongPasswordIsUnauthorized(t *testing.T) {
	f := &fakeDiretrix{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, "wrong-pass")
	if _, err := c.ByEmail(context.Background(), "helena.duarte@example.com"); failure.KindOf(err) != failure.KindUnauthorized || f.hits.Load() != 1 {
		t.Fatalf("err=%v hits=%d", err, f.hits.Load())
	}
}

func TestEmptyInputNotSent(t *testing.T) {
	f := &fakeDiretrix{}
	c := newClient(t, f, httpxtest.Policy(), &httpxtest.Sleeper{}, pass)
	_, err1 := c.ByPhone(context.Background(), "+()- ")
	_, err2 := c.ByEmail(context.Background(), "   ")
	if failure.KindOf(err1) != failure.KindPermanent || failure.KindOf(err2) != failure.KindPermanent || f.hits.Load() != 0 {
		t.Fatalf("%v %v hits=%d", err1, err2, f.hits.Load())
	}
}

func TestFaults(t *testing.T) {
	t.Run("retry-after honoured", func(t *testing.T) {
		var hits atomic.Int32
		s := &httpxtest.Sleeper{}
		c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) == 1 {
				w.Header().Set("Retry-After", "12")
				w.WriteHeader(429)
				return
			}
			_, _ = w.Write(contracts.Read("diretrix/phone.json"))
		}), httpxtest.Policy(), s, pass)
		m, err := c.ByPhone(context.Background(), "11987650123")
		if err != nil || m != helena || len(s.Waits()) != 1 || s.Waits()[0] != 12*time.Second {
			t.Fatalf("%+v %v waits=%v", m, err, s.Waits())
		}
	})
	t.Run("not found does not trip breaker, 5xx does", func(t *testing.T) {
		f := &fakeDiretrix{}
		p := httpxtest.Policy()
		p.MaxRetries = 0
		p.BreakerFailures = 2
		p.BreakerOpenFor = 20 * time.Millisecond
		c := newClient(t, f, p, &httpxtest.Sleeper{}, pass)
		f.set(404, "")
		for i := 0; i < 5; i++ {
			_, _ = c.ByPhone(context.Background(), "11900000000")
		}
		f.set(400, "")
		for i := 0; i < 5; i++ {
			_, _ = c.ByPhone(context.Background(), "11900000000")
		}
		if c.Caller().BreakerState() != "closed" {
			t.Fatal("not-found answers opened the breaker")
		}
		f.set(503, "")
		for i := 0; i < 4; i++ {
			_, _ = c.ByPhone(context.Background(), "11900000000")
		}
		if f.hits.Load() != 12 {
			t.Fatalf("hits = %d, want 10 + 2", f.hits.Load())
		}
		f.set(0, "")
		for deadline := time.Now().Add(5 * time.Second); c.Caller().BreakerState() != "half-open"; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("never half-opened")
			}
		}
		if m, err := c.ByPhone(context.Background(), "11987650123"); err != nil || m != helena {
			t.Fatal(err)
		}
	})
	t.Run("rate limiter holds", func(t *testing.T) {
		p := httpxtest.Policy()
		p.Rate, p.Burst = 2, 1
		s := &httpxtest.Sleeper{}
		c := newClient(t, &fakeDiretrix{}, p, s, pass)
		for i := 0; i < 3; i++ {
			_, _ = c.ByPhone(context.Background(), "11987650123")
		}
		if w := s.Waits(); len(w) != 2 || w[0] != 500*time.Millisecond || w[1] != time.Second {
			t.Fatalf("waits = %v", w)
		}
	})
	t.Run("timeouts are transient and secret-free", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		p := httpxtest.Policy()
		p.Timeout = 20 * time.Millisecond
		p.MaxRetries = 1
		var hits atomic.Int32
		c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}), p, &httpxtest.Sleeper{}, pass)
		_, err := c.ByEmail(context.Background(), "helena.duarte@example.com")
		if failure.KindOf(err) != failure.KindTransient || hits.Load() != 2 {
			t.Fatalf("err=%v hits=%d", err, hits.Load())
		}
		if strings.Contains(err.Error(), "helena") || strings.Contains(err.Error(), pass) {
			t.Fatalf("error leaks: %v", err)
		}
	})
}

func BenchmarkByPhone(b *testing.B) {
	c := newClient(b, &fakeDiretrix{}, httpxtest.Policy(), &httpxtest.Sleeper{}, pass)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.ByPhone(ctx, "5511987650123"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}
