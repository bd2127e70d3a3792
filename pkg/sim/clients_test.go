package sim_test

// Contract tests of the product's clients against the simulators: the same
// assertions the clients' own tests make against the literal contract files
// must hold against the simulated upstreams.

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx/httpxtest"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
)

const contractLead = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"

func start(t *testing.T) *sim.Sims {
	t.Helper()
	s := sim.New(sim.Config{Seed: 3, People: 20})
	if _, err := s.StartLocal(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestC2SAndGatewayClientsAgainstSimulators(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	opts := httpxtest.Options(&httpxtest.Sleeper{}, nil)
	direct, err := c2s.New(c2s.Config{BaseURL: s.C2SBaseURL, Token: s.Config.C2SToken, Policy: httpxtest.Policy(), Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := c2s.NewGateway(c2s.GatewayConfig{BaseURL: s.GatewayURL, Policy: httpxtest.Policy(), Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	want, err := c2s.ParseLead(contracts.Read("c2s/lead.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func(context.Context, string) (*c2s.Lead, error){"direct": direct.GetLead, "gateway": gw.GetLead} {
		got, err := get(ctx, contractLead)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != want.ID || got.Customer != want.Customer {
			t.Fatalf("%s: lead = %+v, want %+v", name, got, want)
		}
		if _, err := get(ctx, "ffffffffffffffffffffffffffffffff"); !failure.Is(err, failure.KindNotFound) {
			t.Fatalf("%s: unknown lead: %v", name, err)
		}
	}
	// A message posted through the port shows up among the lead's messages:
	// the notifier's duplicate check relies on it.
	port, err := c2s.NewRoute(direct, gw, c2s.RouteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route, err := port.PostMessage(ctx, contractLead, "olá\n")
	if err != nil || route != c2s.RouteGateway {
		t.Fatalf("post = %q, %v", route, err)
	}
	lead, err := direct.GetLead(ctx, contractLead)
	// The parser trims text; the notifier compares trimmed bodies too.
	if err != nil || len(lead.Messages) != 1 || strings.TrimSpace(lead.Messages[0]) != "olá" {
		t.Fatalf("messages = %q, %v", lead.Messages, err)
	}
	bad, _ := c2s.New(c2s.Config{BaseURL: s.C2SBaseURL, Token: "wrong", Policy: httpxtest.Policy(), Options: opts})
	if _, err := bad.GetLead(ctx, contractLead); !failure.Is(err, failure.KindUnauthorized) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestDiretrixClientAgainstSimulator(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c, err := diretrix.New(diretrix.Config{BaseURL: s.DiretrixBaseURL, User: s.Config.DiretrixUser, Pass: s.Config.DiretrixPass,
		Policy: httpxtest.Policy(), Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	// diretrix/phone.json lists Helena first; the client takes her.
	for _, q := range []func() (diretrix.Match, error){
		func() (diretrix.Match, error) { return c.ByPhone(ctx, "5511987650123") },
		func() (diretrix.Match, error) { return c.ByEmail(ctx, " Helena.Duarte@Example.com ") },
	} {
		m, err := q()
		if err != nil || m.CPF != "31860457207" {
			t.Fatalf("match = %+v, %v", m, err)
		}
	}
	if _, err := c.ByEmail(ctx, "nobody@example.com"); !failure.Is(err, failure.KindNotFound) {
		t.Fatalf("unknown email: %v", err)
	}
	bad, _ := diretrix.New(diretrix.Config{BaseURL: s.DiretrixBaseURL, User: "x", Pass: "y", Policy: httpxtest.Policy(),
		Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if _, err := bad.ByPhone(ctx, "11987650123"); !failure.Is(err, failure.KindUnauthorized) {
		t.Fatalf("bad credentials: %v", err)
	}
}

func TestWorkAPIClientAgainstSimulator(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c, err := workapi.New(workapi.Config{URL: s.WorkAPIURL, Token: s.Config.WorkToken, Policy: httpxtest.Policy(),
		Options: httpxtest.Options(&httpxtest.Sleeper{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.CPF(ctx, "31860457207")
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	_ = json.Unmarshal(res.Raw, &got)
	_ = json.Unmarshal(contracts.Read("workapi/cpf.json"), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the simulator's person differs from workapi/cpf.json")
	}
	if s.WorkAPI.PaidCalls("31860457207") != 1 {
		t.Fatalf("paid calls = %d", s.WorkAPI.PaidCalls("31860457207"))
	}
	cases := []struct {
		name   string
		faults sim.Faults
		kind   failure.Kind
	}{
		{"token expired", sim.Faults{TokenExpired: true}, failure.KindUnauthorized},
		{"out of credits", sim.Faults{OutOfCredits: true}, failure.KindCreditsExhausted},
	}
	for _, tc := range cases {
		s.WorkAPI.SetFaults(tc.faults)
		if _, err := c.CPF(ctx, "74291506325"); failure.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.kind)
		}
	}
	s.WorkAPI.ClearFaults()
	// A valid CPF nobody has: the erro body is permanent for that CPF.
	if _, err := c.CPF(ctx, "12345678909"); !failure.Is(err, failure.KindPermanent) {
		t.Fatalf("unknown cpf: %v", err)
	}
	if got := s.WorkAPI.PaidCalls("74291506325"); got != 0 {
		t.Fatalf("error answers must not count as paid: %d", got)
	}
}
