package message

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/sim"
)

var mult19 = decimal.RequireFromString("1.9")

func mustPerson(t testing.TB, raw []byte) *person.Person {
	t.Helper()
	p, err := person.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGoldens(t *testing.T) {
	full := mustPerson(t, contracts.Read("workapi/cpf.json"))
	sparse := mustPerson(t, contracts.Read("workapi/cpf_sparse.json"))
	tests := []struct {
		golden string
		in     Input
	}{
		{"same_person.txt", Input{Subjects: []Subject{{full, FoundByBoth}}, Multiplier: mult19}},
		{"single_source.txt", Input{Subjects: []Subject{{full, FoundByPhone}}, Multiplier: mult19}},
		{"sparse.txt", Input{Subjects: []Subject{{sparse, FoundByEmail}}, Multiplier: mult19}},
		{"different_people.txt", Input{
			Subjects:   []Subject{{full, FoundByPhone}, {sparse, FoundByEmail}},
			LeadPhone:  "5511987650123",
			LeadEmail:  "Helena.Duarte@Example.com",
			Multiplier: mult19,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			want := string(contracts.Read("message/" + tt.golden))
			if got := Format(tt.in); got != want {
				t.Errorf("%s mismatch (- want, + got):\n%s", tt.golden, lineDiff(want, got))
			}
		})
	}
}

// TestTwoPeopleOrder: the phone person comes first whatever the input order.
func TestTwoPeopleOrder(t *testing.T) {
	full := mustPerson(t, contracts.Read("workapi/cpf.json"))
	sparse := mustPerson(t, contracts.Read("workapi/cpf_sparse.json"))
	in := Input{
		Subjects:   []Subject{{sparse, FoundByEmail}, {full, FoundByPhone}},
		LeadPhone:  "5511987650123",
		LeadEmail:  "Helena.Duarte@Example.com",
		Multiplier: mult19,
	}
	want := string(contracts.Read("message/different_people.txt"))
	if got := Format(in); got != want {
		t.Errorf("mismatch (- want, + got):\n%s", lineDiff(want, got))
	}
}

func TestZeroMultiplierIsDefault(t *testing.T) {
	full := mustPerson(t, contracts.Read("workapi/cpf.json"))
	got := Format(Input{Subjects: []Subject{{full, FoundByPhone}}})
	if want := string(contracts.Read("message/single_source.txt")); got != want {
		t.Errorf("mismatch (- want, + got):\n%s", lineDiff(want, got))
	}
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name, payload, want string
	}{
		{"empty object", `{}`, "✅ DADOS PESSOAIS\n"},
		{"unparsable renda prints raw", `{"DadosEconomicos":{"renda":"NAO INFORMADO"}}`,
			"✅ DADOS PESSOAIS\n\n💰 DADOS FINANCEIROS\nRenda: R$ NAO INFORMADO\n"},
		{"numeric renda is absent", `{"DadosEconomicos":{"renda":8500.5,"score":{"scoreCSBA":"700"}}}`,
			"✅ DADOS PESSOAIS\n\n💰 DADOS FINANCEIROS\nScore de Crédito: 700\n"},
		{"grouped renda", `{"DadosEconomicos":{"renda":"R$ 1.630"}}`,
			"✅ DADOS PESSOAIS\n\n💰 DADOS FINANCEIROS\nRenda: R$ 3.097,00\n"},
		{"lists skip empty entries and stop at their limit", `{"emails":[{"email":" "},{"email":"A@X.COM"},{"email":"b@x.com","prioridade":" "},{"email":"c@x.com"},{"email":"d@x.com"}],
			"telefones":[{"telefone":""},{"telefone":"+55 11 3302-1234","tipo":"FIXO","whatsapp":"sim"},{"telefone":"123"}]}`,
			"✅ DADOS PESSOAIS\n\n📧 EMAILS\n1. a@x.com (N/A)\n2. b@x.com (N/A)\n3. c@x.com (N/A)\n\n📱 TELEFONES\n1. (11) 3302-1234 - FIXO\n2. 123 - N/A\n"},
		{"address variants", `{"enderecos":[{"bairro":"CENTRO"},{"cep":"01000900","cidade":"SAO PAULO"},{"logradouro":"A","uf":"SP"},{"logradouro":"B"}]}`,
			"✅ DADOS PESSOAIS\n\n🏠 ENDEREÇOS\n1. SAO PAULO - CEP: 01000-900\n2. A\n"},
		{"cep only", `{"enderecos":[{"cep":"01000-900"}]}`,
			"✅ DADOS PESSOAIS\n\n🏠 ENDEREÇOS\n1. CEP: 01000-900\n"},
		{"companies", `{"empresas":[{"cnpj":null,"relacao":"X"},{"cnpj":"123","relacao":" SOCIA "},{"cnpj":"73820146000157","relacao":null}]}`,
			"✅ DADOS PESSOAIS\n\n🏢 EMPRESAS\n1. CNPJ: 123 - SOCIA\n2. CNPJ: 73.820.146/0001-57 - SOCIO\n"},
		{"embedded newlines cannot forge lines", `{"DadosBasicos":{"nome":"ANA\nCPF: 000","cpf":"123"}}`,
			"✅ DADOS PESSOAIS\nNome: ANA CPF: 000\nCPF: 123\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPerson(t, []byte(tt.payload))
			if got := Format(Input{Subjects: []Subject{{p, FoundByPhone}}, Multiplier: mult19}); got != tt.want {
				t.Errorf("mismatch (- want, + got):\n%s", lineDiff(tt.want, got))
			}
		})
	}
}

func TestNilPersonAndNoSubjects(t *testing.T) {
	if got := Format(Input{Subjects: []Subject{{nil, FoundByBoth}}}); got != headerSame+"\n\n✅ DADOS PESSOAIS\n" {
		t.Errorf("nil person: %q", got)
	}
	if got := Format(Input{}); got != FormatUnresolved("") {
		t.Errorf("no subjects: %q", got)
	}
}

func TestFormatUnresolved(t *testing.T) {
	for _, reason := range []string{"", ReasonNoIdentifiers, ReasonNotFound, "phone 11987650123 unknown"} {
		got := FormatUnresolved(reason)
		if !strings.HasSuffix(got, "\n") || strings.Contains(got, "1198765") || strings.Contains(got, reason) && reason != "" {
			t.Errorf("FormatUnresolved(%q) = %q", reason, got)
		}
	}
	if FormatUnresolved(ReasonNotFound) == FormatUnresolved("") {
		t.Error("a known reason should be explained")
	}
}

func TestHash(t *testing.T) {
	// sha256("abc"), FIPS 180-2 test vector.
	if got := Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Hash = %s", got)
	}
}

func FuzzFormat(f *testing.F) {
	for _, name := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json", "workapi/error_token.json", "workapi/error_credits.json"} {
		f.Add(contracts.Read(name), uint8(FoundByBoth), "5511987650123", "Helena.Duarte@Example.com")
	}
	f.Add([]byte(`{"DadosEconomicos":{"renda":"1,2,3","poderAquisitivo":{"faixaPoderAquisitivo":"R$ 9.999.999,999"}}}`), uint8(0), "", "")
	f.Fuzz(func(t *testing.T, raw []byte, role uint8, phone, email string) {
		p, err := person.Parse(raw)
		if err != nil {
			return
		}
		r := Role(role % 4)
		samePrint(t, raw)
		for _, in := range []Input{
			{Subjects: []Subject{{p, r}}, Multiplier: mult19},
			{Subjects: []Subject{{p, FoundByEmail}, {p, r}}, LeadPhone: phone, LeadEmail: email, Multiplier: mult19},
		} {
			out := Format(in)
			if !strings.HasSuffix(out, "\n") || !strings.Contains(out, "✅ DADOS PESSOAIS") {
				t.Fatalf("malformed output %q", out)
			}
			if strings.Contains(out, "\n\n\n") {
				t.Fatalf("double blank line in %q", out)
			}
		}
	})
}

// The enriched event carries each person's summary instead of the Work API
// payload; the notifier must print exactly what the payload would have.
func TestSummaryPrintsWhatThePayloadPrints(t *testing.T) {
	payloads := [][]byte{contracts.Read("workapi/cpf.json"), contracts.Read("workapi/cpf_sparse.json"), []byte(`{}`),
		// Escapes, HTML characters, blanks, control characters, odd types and
		// entries with nothing printable, in the order they came.
		[]byte(`{"DadosBasicos":{"nome":"  ANA <b>&amp</b> \u00c9\n\"X\"  ","cpf":31860457207,"sexo":" ","nomeMae":"M\u0000AE",` +
			`"dataNascimento":null},"DadosEconomicos":{"renda":"1.630,5","poderAquisitivo":{"poderAquisitivoDescricao":"A/B",` +
			`"faixaPoderAquisitivo":"De R$ 1.000 até R$ 2.000"},"score":{"scoreCSBA":700,"scoreCSBAFaixaRisco":"ALTO"}},` +
			`"telefones":[{},{"telefone":"11 98765-0123","whatsapp":"SIM","tipo":" "},"x",{"telefone":"123","whatsapp":"sim"}],` +
			`"emails":[{"email":"A@X.COM","prioridade":"\t"},{"prioridade":"ALTA"},{"email":"b@x.com"}],` +
			`"enderecos":[{"bairro":"CENTRO"},{"cep":"01000-900"},{"logradouro":"R \u2028 A","logradouroNumero":"1","cidade":"X","uf":"SP"}],` +
			`"empresas":[{"cnpj":"73820146000157"},{"cnpj":"1","relacao":" SOCIA "}]}`),
	}
	for _, p := range sim.NewPopulation(sim.Config{Seed: 7, People: 200, Leads: -1}).People() {
		payloads = append(payloads, p.Raw)
	}
	for _, raw := range payloads {
		samePrint(t, raw)
	}

	full := mustPerson(t, contracts.Read("workapi/cpf.json"))
	sum, err := full.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if compact := len(strings.Join(strings.Fields(string(full.Raw)), "")); len(sum)*2 > compact {
		t.Errorf("summary of %d bytes, want under half of the payload's %d", len(sum), compact)
	}
	for _, unprinted := range []string{"PARDA", "SEM INFORMAÇÃO", "ENSINO SUPERIOR", "56028391786", "OTIMO", "VIVO"} {
		if strings.Contains(string(sum), unprinted) {
			t.Errorf("the summary carries %q, which the message does not print", unprinted)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"n":1`} {
		if _, err := person.ParseSummary([]byte(bad)); err == nil {
			t.Errorf("ParseSummary(%q) accepted", bad)
		}
	}
}

// samePrint fails when raw's summary prints otherwise than raw itself.
func samePrint(t *testing.T, raw []byte) {
	t.Helper()
	p, err := person.Parse(raw)
	if err != nil {
		return
	}
	sum, err := p.Summary()
	if err != nil {
		t.Fatalf("Summary: %v", err)
	}
	back, err := person.ParseSummary(sum)
	if err != nil {
		t.Fatalf("ParseSummary(%s): %v", sum, err)
	}
	for _, r := range []Role{FoundByPhone, FoundByBoth} {
		want := Format(Input{Subjects: []Subject{{p, r}, {p, FoundByEmail}}, LeadPhone: "5511987650123", Multiplier: mult19})
		got := Format(Input{Subjects: []Subject{{back, r}, {back, FoundByEmail}}, LeadPhone: "5511987650123", Multiplier: mult19})
		if got != want {
			t.Fatalf("the summary %s prints otherwise (- payload, + summary):\n%s", sum, lineDiff(want, got))
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	full := mustPerson(b, contracts.Read("workapi/cpf.json"))
	sparse := mustPerson(b, contracts.Read("workapi/cpf_sparse.json"))
	in := Input{
		Subjects:   []Subject{{full, FoundByPhone}, {sparse, FoundByEmail}},
		LeadPhone:  "5511987650123",
		LeadEmail:  "Helena.Duarte@Example.com",
		Multiplier: mult19,
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Format(in)
	}
}

// lineDiff shows both texts line by line, marking the lines that differ, with
// %q so that trailing spaces and missing newlines are visible.
func lineDiff(want, got string) string {
	w, g := strings.SplitAfter(want, "\n"), strings.SplitAfter(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			fmt.Fprintf(&b, "  %3d %q\n", i+1, wl)
			continue
		}
		if i < len(w) {
			fmt.Fprintf(&b, "- %3d %q\n", i+1, wl)
		}
		if i < len(g) {
			fmt.Fprintf(&b, "+ %3d %q\n", i+1, gl)
		}
	}
	return b.String()
}
