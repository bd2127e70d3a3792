package coredb

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/domain/person"
)

func TestRiskOf(t *testing.T) {
	for in, want := range map[string]string{
		"BAIXISSIMO RISCO": "0.10",
		"Baixíssimo":       "0.10",
		"MUITO BAIXO":      "0.10",
		"BAIXO RISCO":      "0.30",
		"baixo":            "0.30",
		"MÉDIO RISCO":      "0.50",
		"MEDIO-ALTO":       "0.50",
		"ALTO":             "0.70",
		"ALTÍSSIMO":        "0.90",
		"muito alto risco": "0.90",
		"MUITO":            "",
		"MUITO MEDIO":      "",
		"RISCO BAIXO":      "",
		"":                 "",
		"N/A":              "",
	} {
		if got := riskOf(in); got != want {
			t.Errorf("riskOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPhoneTypeOf(t *testing.T) {
	for in, want := range map[string]string{
		"TELEFONE MÓVEL":       "mobile",
		"telefone móvel":       "mobile",
		"MOVEL":                "mobile",
		"CELULAR":              "mobile",
		"TELEFONE RESIDENCIAL": "landline",
		"COMERCIAL":            "landline",
		"FIXO":                 "landline",
		"":                     "mobile",
		"OUTRO":                "mobile",
	} {
		if got := phoneTypeOf(in); got != want {
			t.Errorf("phoneTypeOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSexAndBirthDate(t *testing.T) {
	for in, want := range map[string]string{"F - FEMININO": "F", "M - MASCULINO": "M", "f": "F", "I - IGNORADO": "", "": ""} {
		if got := sexOf(in); got != want {
			t.Errorf("sexOf(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"14/03/1986": "1986-03-14", "31/02/1986": "", "1986-03-14": "", "": "", "1/3/1986": ""} {
		if got := birthDateOf(in); got != want {
			t.Errorf("birthDateOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeriveRowsOddInput(t *testing.T) {
	p, err := person.Parse([]byte(`{
		"DadosBasicos": {"cpf": "31860457207", "nome": "  Ana\u0000 ", "nomePai": "sem informação", "cns": "123"},
		"DadosEconomicos": {"renda": "99999999999999", "score": {"scoreCSBA": "99999999999"},
			"poderAquisitivo": {"x": "a\u0000b"}},
		"emails": [{"email": ""}, {"email": "A@B.C", "qualidade": "ÓTIMO"}, {"email": "a@b.c"}],
		"telefones": [{"telefone": "+55 (11) 98765-0123"}, {"telefone": "11987650123"}, {"telefone": "n/a"}],
		"enderecos": [{"logradouro": "", "cep": ""}, {"cep": "01000-900"}, {"cep": "01000900"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	r := deriveRows(p, "31860457207", "", decimal.RequireFromString("1.9"))
	if r.entity.name != "Ana" || r.entity.canonicalName != "ANA" {
		t.Errorf("entity = %+v", r.entity)
	}
	if string(r.profile.metadata) != `{"cns":"123"}` {
		t.Errorf("profile metadata = %s (father SEM INFORMAÇÃO must be skipped)", r.profile.metadata)
	}
	// Income overflowing numeric(14,2) and a score overflowing int are dropped, not fatal.
	if r.financial != nil {
		t.Errorf("financial = %+v, want nil", r.financial)
	}
	if len(r.emails) != 1 || r.emails[0].email != "a@b.c" || !r.emails[0].verified {
		t.Errorf("emails = %+v", r.emails)
	}
	if len(r.phones) != 1 || r.phones[0].phone != "11987650123" {
		t.Errorf("phones = %+v", r.phones)
	}
	if len(r.addresses) != 1 || r.addresses[0].zipCode != "01000900" || r.addresses[0].street != "" {
		t.Errorf("addresses = %+v", r.addresses)
	}

	p.Economic.Score.CSBAFaixaRisco = "ALTO"
	r = deriveRows(p, "31860457207", "", decimal.RequireFromString("1.9"))
	if r.financial == nil || r.financial.riskScore != "0.70" || r.financial.income != "" {
		t.Fatalf("financial = %+v", r.financial)
	}
	var meta map[string]map[string]string
	if err := json.Unmarshal(r.financial.metadata, &meta); err != nil || meta["poder_aquisitivo"]["x"] != "ab" {
		t.Errorf("metadata = %s (%v), NUL must be stripped for jsonb", r.financial.metadata, err)
	}
}
