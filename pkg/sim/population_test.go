package sim

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

func TestPopulationDeterministic(t *testing.T) {
	a := NewPopulation(Config{Seed: 42, People: 300})
	b := NewPopulation(Config{Seed: 42, People: 300})
	c := NewPopulation(Config{Seed: 43, People: 300})
	if !reflect.DeepEqual(a.People(), b.People()) || !reflect.DeepEqual(a.Leads(), b.Leads()) {
		t.Fatal("same seed, different population")
	}
	if reflect.DeepEqual(a.People()[2:], c.People()[2:]) {
		t.Fatal("different seeds, same people")
	}
	if n := len(a.People()); n != 302 {
		t.Errorf("%d people, want 300 + 2 fixtures", n)
	}
	if n := len(a.Leads()); n != 302 {
		t.Errorf("%d leads, want 300 + 2 contract leads", n)
	}
}

var (
	rendaPlain = regexp.MustCompile(`^\d+,\d{2}$`)
	rendaDots  = regexp.MustCompile(`^\d{1,3}(\.\d{3})+,\d{2}$`)
)

func TestPeopleAreValid(t *testing.T) {
	p := NewPopulation(Config{Seed: 1, People: 2000})
	seen := map[string]bool{}
	shapes := map[string]int{}
	for _, x := range p.People() {
		if !brdata.ValidCPF(x.CPF) || seen[x.CPF] {
			t.Fatalf("bad or duplicate CPF %q", x.CPF)
		}
		seen[x.CPF] = true
		var rec struct {
			Status          int            `json:"status"`
			DadosBasicos    map[string]any `json:"DadosBasicos"`
			DadosEconomicos map[string]any `json:"DadosEconomicos"`
			Empresas        []struct {
				CNPJ string `json:"cnpj"`
			} `json:"empresas"`
			Telefones []map[string]any `json:"telefones"`
		}
		if err := json.Unmarshal(x.Raw, &rec); err != nil {
			t.Fatalf("%s: %v", x.CPF, err)
		}
		if rec.Status != 200 || rec.DadosBasicos["cpf"] != x.CPF || rec.DadosBasicos["nome"] != x.Name {
			t.Fatalf("%s: record does not match person: %s", x.CPF, x.Raw)
		}
		for _, e := range rec.Empresas {
			if !ValidCNPJ(e.CNPJ) {
				t.Errorf("%s: invalid CNPJ %s", x.CPF, e.CNPJ)
			}
		}
		for _, ph := range x.Phones {
			if !brdata.PlausiblePhone(ph) {
				t.Errorf("%s: phone %s", x.CPF, ph)
			}
			if c := p.PhoneCandidates(ph); firstValid(c) != x.CPF {
				t.Errorf("phone %s leads to %v, not %s", ph, c, x.CPF)
			}
		}
		for _, em := range x.Emails {
			if c := p.EmailCandidates(em); firstValid(c) != x.CPF {
				t.Errorf("email %s leads to %v, not %s", em, c, x.CPF)
			}
		}
		switch v := rec.DadosEconomicos["renda"].(type) {
		case string:
			switch {
			case rendaDots.MatchString(v):
				shapes["renda 1.234,56"]++
			case rendaPlain.MatchString(v):
				shapes["renda 8500,50"]++
			case v == "":
				shapes["empty"]++
			default:
				t.Errorf("renda %q", v)
			}
		case float64:
			shapes["number"]++
		case nil:
			shapes["null or absent"]++
		}
		if _, ok := rec.DadosBasicos["nomeMae"]; !ok {
			shapes["nomeMae absent"]++
		}
		if len(rec.Telefones) == 0 {
			shapes["no phones"]++
		}
		if rec.DadosBasicos["sexo"] == nil {
			shapes["sexo null or absent"]++
		}
		if len(p.PhoneCandidates(first(x.Phones))) > 1 && !brdata.ValidCPF(p.PhoneCandidates(first(x.Phones))[0].CPF) {
			shapes["invalid candidate first"]++
		}
	}
	for _, k := range []string{"renda 1.234,56", "renda 8500,50", "empty", "number", "null or absent", "nomeMae absent", "no phones", "sexo null or absent", "invalid candidate first"} {
		if shapes[k] == 0 {
			t.Errorf("no person shows %q: %v", k, shapes)
		}
	}
	if !ValidCNPJ("73820146000157") || ValidCNPJ("73820146000158") {
		t.Error("ValidCNPJ disagrees with the contract")
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestLeadMix(t *testing.T) {
	p := NewPopulation(Config{Seed: 3, People: 2000, SplitRate: 0.2, NobodyRate: 0.1})
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	kinds := map[LeadKind]int{}
	for _, l := range p.Leads() {
		if !hex32.MatchString(l.ID) {
			t.Fatalf("lead id %q", l.ID)
		}
		kinds[l.Kind]++
		e, ok := p.Expected(l.ID)
		if !ok {
			t.Fatal("lead not found")
		}
		var doc struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(l.Doc, &doc); err != nil || doc.Data.ID != l.ID {
			t.Fatalf("lead doc %s: %v", l.Doc, err)
		}
		n := len(e.Persons())
		switch l.Kind {
		case LeadSame:
			if n != 1 || e.PhoneCPF != e.EmailCPF {
				t.Errorf("same: %+v", e)
			}
		case LeadSplit:
			if n != 2 || e.PhoneCPF == "" || e.EmailCPF == "" {
				t.Errorf("split: %+v", e)
			}
		case LeadNobody:
			if n != 0 {
				t.Errorf("nobody: %+v", e)
			}
		case LeadPhoneOnly:
			if n != 1 || e.EmailCPF != "" {
				t.Errorf("phone only: %+v", e)
			}
		case LeadEmailOnly:
			if n != 1 || e.PhoneCPF != "" {
				t.Errorf("email only: %+v", e)
			}
		}
	}
	total := float64(len(p.Leads()))
	for k, want := range map[LeadKind]float64{LeadSplit: 0.2, LeadNobody: 0.1, LeadPhoneOnly: 0.05, LeadEmailOnly: 0.05, LeadSame: 0.6} {
		if got := float64(kinds[k]) / total; got < want*0.7 || got > want*1.3 {
			t.Errorf("%s share %.3f, want ~%.2f", k, got, want)
		}
	}
	none := NewPopulation(Config{Seed: 3, People: 100, SplitRate: -1, NobodyRate: -1, PartialRate: -1})
	for _, l := range none.Leads()[2:] {
		if l.Kind != LeadSame {
			t.Fatalf("negative rates still made a %s lead", l.Kind)
		}
	}
}

func TestAddPersonAndLead(t *testing.T) {
	s := start(t, Config{Seed: 12, People: -1})
	if got := len(s.Pop.People()); got != 2 {
		t.Fatalf("People: -1 left %d people", got)
	}
	x := Person{CPF: "52998224725", Name: "TESTE DA SILVA", Phones: []string{"+55 (21) 99999-0001"}, Emails: []string{" Teste@Example.com"}}
	if err := s.Pop.AddPerson(x); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Person{{CPF: "52998224725"}, {CPF: "52998224726"}} {
		if s.Pop.AddPerson(bad) == nil {
			t.Errorf("AddPerson(%s) accepted", bad.CPF)
		}
	}
	s.Pop.AddDiretrixCandidate("21999990001", Candidate{Nome: "OUTRO", CPF: HelenaCPF})
	jsonEqual(t, s.diretrixGet(t, "Telefone", "21999990001").body,
		[]byte(`[{"nome":"TESTE DA SILVA","cpf":"52998224725"},{"nome":"OUTRO","cpf":"31860457207"}]`))
	var rec struct {
		DadosBasicos struct{ CPF string } `json:"DadosBasicos"`
		Telefones    []struct{ Telefone string }
	}
	json.Unmarshal(do(t, "GET", s.workURL("cpf", x.CPF), "").body, &rec)
	if rec.DadosBasicos.CPF != x.CPF || len(rec.Telefones) != 1 || rec.Telefones[0].Telefone != "21999990001" {
		t.Errorf("rendered record = %+v", rec)
	}
	id := strings.Repeat("ab", 16)
	if err := s.Pop.AddLead(Lead{ID: id, Phone: "5521999990001", Email: HelenaEmail}); err != nil {
		t.Fatal(err)
	}
	if s.Pop.AddLead(Lead{ID: id}) == nil {
		t.Error("duplicate lead accepted")
	}
	if got := s.Pop.ExpectedPersons(id); !reflect.DeepEqual(got, []string{x.CPF, HelenaCPF}) {
		t.Errorf("ExpectedPersons = %v", got)
	}
	r := do(t, "GET", s.C2SBaseURL+"/integration/leads/"+id, "", bearer(s)...)
	var doc struct {
		Data struct {
			Attributes struct {
				Customer map[string]any `json:"customer"`
			} `json:"attributes"`
		} `json:"data"`
	}
	json.Unmarshal(r.body, &doc)
	cust := doc.Data.Attributes.Customer
	if _, hasName := cust["name"]; r.status != 200 || cust["phone"] != "5521999990001" || hasName {
		t.Errorf("custom lead (absent name left out): %d %s", r.status, r.body)
	}
	// An email the mux must unescape.
	s.Pop.AddDiretrixCandidate("a+b/c@example.com", Candidate{Nome: "X", CPF: HelenaCPF})
	if r := s.diretrixGet(t, "Email", "a+b/c@example.com"); !strings.Contains(string(r.body), HelenaCPF) {
		t.Errorf("escaped email: %d %s (%s)", r.status, r.body, url.PathEscape("a+b/c@example.com"))
	}
}

func TestBRMoney(t *testing.T) {
	for _, tc := range []struct {
		cents int64
		dots  bool
		want  string
	}{{850050, false, "8500,50"}, {123456, true, "1.234,56"}, {5, true, "0,05"}, {123456789, true, "1.234.567,89"}, {100000, true, "1.000,00"}} {
		if got := brMoney(tc.cents, tc.dots); got != tc.want {
			t.Errorf("brMoney(%d,%v) = %s, want %s", tc.cents, tc.dots, got, tc.want)
		}
	}
}
