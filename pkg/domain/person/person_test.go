package person

import (
	"testing"

	"github.com/leadflow/leadflow/pkg/contracts"
)

func TestParseFull(t *testing.T) {
	p, err := Parse(contracts.Read("workapi/cpf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p.CPF() != "31860457207" || p.Basic.Nome.String() != "HELENA MARQUES DUARTE" {
		t.Fatalf("basic = %+v", p.Basic)
	}
	if p.Economic.Renda.String() != "8500,50" || p.Economic.Score.CSBA.String() != "845" {
		t.Fatalf("economic = %+v", p.Economic)
	}
	if p.Economic.PoderAquisitivo.Faixa.String() != "De R$ 8168 até R$ 12252" {
		t.Fatalf("faixa = %q", p.Economic.PoderAquisitivo.Faixa)
	}
	if len(p.Economic.SerasaMosaicRaw) == 0 || len(p.Economic.PoderAquisitivoRaw) == 0 {
		t.Fatal("raw economic objects must be kept")
	}
	if len(p.Phones) != 4 || len(p.Emails) != 4 || len(p.Addresses) != 3 || len(p.Companies) != 4 {
		t.Fatalf("lists: %d %d %d %d", len(p.Phones), len(p.Emails), len(p.Addresses), len(p.Companies))
	}
	if p.Phones[1].Whatsapp.Present() {
		t.Fatal("null whatsapp must be absent")
	}
	if p.Emails[2].Prioridade.Present() {
		t.Fatal("missing prioridade must be absent")
	}
}

func TestParseSparseAndOddShapes(t *testing.T) {
	p, err := Parse(contracts.Read("workapi/cpf_sparse.json"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Economic.Score.CSBA.Present() || p.Basic.NomeMae.Present() {
		t.Fatal("null and empty strings must be absent")
	}
	if len(p.Emails) != 0 || len(p.Phones) != 2 {
		t.Fatalf("emails %d phones %d", len(p.Emails), len(p.Phones))
	}

	odd := `{"DadosBasicos":{"cpf":12345678901,"nome":["x"]},"DadosEconomicos":"none",
		"telefones":{"a":1},"emails":[1,"x",null,{"email":"A@B.C"}],"empresas":null}`
	p, err = Parse([]byte(odd))
	if err != nil {
		t.Fatal(err)
	}
	// A numeric CPF is the CPF (brdata.CPFFromJSON, the one rule for every
	// upstream); other numbers and arrays are absent, not errors.
	if p.CPF() != "12345678901" || p.Basic.Nome.Present() {
		t.Fatalf("cpf %q nome %v: a numeric CPF is read, arrays are absent", p.CPF(), p.Basic.Nome.Present())
	}
	if len(p.Emails) != 1 || p.Emails[0].Email.String() != "A@B.C" || p.Phones != nil {
		t.Fatalf("lists: %+v %+v", p.Emails, p.Phones)
	}
}

func TestParseRejectsNonObjects(t *testing.T) {
	for _, in := range []string{"", "[]", "null", `"x"`, "{", "12"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) should fail", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json", "workapi/error_token.json", "workapi/error_credits.json"} {
		f.Add(contracts.Read(name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err == nil && p == nil {
			t.Fatal("nil person without error")
		}
	})
}

// A CPF the Work API sends as a JSON number (leading zeros lost) is the same
// person as the string: it is not paid for and then skipped as "not a person".
func TestNumericCPFIsAPerson(t *testing.T) {
	for raw, want := range map[string]string{
		`{"DadosBasicos":{"cpf":"074.291.506-32"}}`: "07429150632",
		`{"DadosBasicos":{"cpf":7429150632}}`:       "07429150632",
		`{"DadosBasicos":{"cpf":"07429150632"}}`:    "07429150632",
		`{"DadosBasicos":{"cpf":7.5}}`:              "",
		`{"DadosBasicos":{"cpf":null}}`:             "",
	} {
		p, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if p.CPF() != want || p.HasCPF() != (want != "") {
			t.Errorf("%s: CPF %q HasCPF %v, want %q", raw, p.CPF(), p.HasCPF(), want)
		}
	}
}
