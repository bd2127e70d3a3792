package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// Contract fixture identifiers, from ../shared/contracts.
const (
	HelenaCPF       = "31860457207"
	HelenaPhone     = "11987650123"
	HelenaEmail     = "helena.duarte@example.com"
	OtavioCPF       = "74291506325"
	OtavioPhone     = "11912340987" // the lead's phone (5511912340987), known to Diretrix only
	OtavioEmail     = "otavio.prado@example.com"
	ContractLeadID  = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10" // c2s/lead.json, Helena
	OtavioLeadID    = "a1b2c3d4e5f60718293a4b5c6d7e8f90" // c2s/webhook_array.json, Otavio
	contractLeadDoc = "c2s/lead.json"
)

// addFixtures loads Helena and Otavio exactly as the contract files show
// them. Helena is added first so Diretrix lists her first for her phone,
// with Otavio second (diretrix/phone.json).
func (p *Population) addFixtures() {
	helena := personFromWork(contracts.Read("workapi/cpf.json"))
	otavio := personFromWork(contracts.Read("workapi/cpf_sparse.json"))
	otavio.DiretrixPhones = []string{OtavioPhone, HelenaPhone}
	otavio.DiretrixEmails = []string{OtavioEmail}
	for _, x := range []*Person{helena, otavio} {
		if err := p.AddPerson(*x); err != nil {
			panic(err)
		}
	}
	must(p.AddLead(Lead{
		ID: ContractLeadID, Name: "Helena Duarte", Phone: "5511987650123", Email: HelenaEmail,
		Kind: LeadContract, Doc: contracts.Read(contractLeadDoc),
	}))
	ex := defaultLeadExtras(OtavioLeadID)
	ex.created, ex.updated = "2025-11-21T15:00:03.250Z", "2025-11-21T15:00:03.250Z"
	l := Lead{ID: OtavioLeadID, Name: "Otavio Prado", Phone: "5511912340987", Email: OtavioEmail, Kind: LeadContract}
	l.Doc = mustJSON(leadDoc(l, ex))
	must(p.AddLead(l))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// personFromWork reads the fields the simulators index from a Work API
// record, tolerating the odd shapes the contract promises.
func personFromWork(raw []byte) *Person {
	var w struct {
		DadosBasicos map[string]any   `json:"DadosBasicos"`
		Telefones    []map[string]any `json:"telefones"`
		Emails       []map[string]any `json:"emails"`
		Enderecos    []map[string]any `json:"enderecos"`
		Empresas     []map[string]any `json:"empresas"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		panic("sim: fixture: " + err.Error())
	}
	s := func(m map[string]any, k string) string {
		if v, ok := m[k].(string); ok {
			return v
		}
		return ""
	}
	x := &Person{
		CPF: s(w.DadosBasicos, "cpf"), Name: s(w.DadosBasicos, "nome"),
		Mother: s(w.DadosBasicos, "nomeMae"), BirthDate: s(w.DadosBasicos, "dataNascimento"),
		Raw: raw,
	}
	for _, t := range w.Telefones {
		if v := brdata.NormalizePhone(s(t, "telefone")); v != "" {
			x.Phones = append(x.Phones, v)
		}
	}
	for _, e := range w.Emails {
		if v := brdata.NormalizeEmail(s(e, "email")); v != "" {
			x.Emails = append(x.Emails, v)
		}
	}
	for _, a := range w.Enderecos {
		x.Addresses = append(x.Addresses, Address{
			TipoLogradouro: s(a, "tipoLogradouro"), Logradouro: s(a, "logradouro"),
			Numero: s(a, "logradouroNumero"), Complemento: s(a, "complemento"),
			Bairro: s(a, "bairro"), Cidade: s(a, "cidade"), UF: s(a, "uf"), CEP: s(a, "cep"),
		})
	}
	for _, e := range w.Empresas {
		if v := s(e, "cnpj"); v != "" {
			x.Companies = append(x.Companies, v)
		}
	}
	return x
}

// renderMinimal renders a complete, gap-free Work API record for a person
// added by a test without a Raw body.
func renderMinimal(x *Person) []byte {
	basic := obj{{"nome", x.Name}, {"cpf", x.CPF}, {"dataNascimento", x.BirthDate},
		{"sexo", "NÃO INFORMADO"}, {"nomeMae", x.Mother}, {"nacionalidade", "BRASILEIRA"}}
	tel := []obj{}
	for _, ph := range x.Phones {
		tipo := "TELEFONE MÓVEL"
		if len(ph) == 10 {
			tipo = "TELEFONE RESIDENCIAL"
		}
		tel = append(tel, obj{{"telefone", ph}, {"status", "ATIVO"}, {"tipo", tipo}, {"operadora", "VIVO"}, {"whatsapp", null}})
	}
	ems := []obj{}
	for _, e := range x.Emails {
		ems = append(ems, obj{{"email", e}, {"prioridade", "ALTA"}, {"qualidade", "BOM"}, {"emailPessoal", "SIM"}, {"blacklist", "NÃO"}})
	}
	ends := []obj{}
	for _, a := range x.Addresses {
		ends = append(ends, obj{{"tipoLogradouro", a.TipoLogradouro}, {"logradouro", a.Logradouro},
			{"logradouroNumero", a.Numero}, {"complemento", a.Complemento}, {"bairro", a.Bairro},
			{"cidade", a.Cidade}, {"uf", a.UF}, {"cep", a.CEP}})
	}
	emp := []obj{}
	for _, c := range x.Companies {
		emp = append(emp, obj{{"cnpj", c}, {"tipoRelacao", "QSA"}, {"relacao", "SOCIO"}, {"admissao", "01/01/2020"}, {"demissao", ""}})
	}
	return mustJSON(obj{{"status", 200}, {"DadosBasicos", basic},
		{"DadosEconomicos", obj{{"renda", "5000,00"}}},
		{"empresas", emp}, {"enderecos", ends}, {"telefones", tel}, {"emails", ems}})
}

// leadExtras are the parts of a lead document that are not the customer.
type leadExtras struct {
	internalID       int
	customerID       string
	description      string
	product          any
	seller           any
	source           any
	status           any
	created, updated string
	absent           any // how an absent customer field is shown; nil = key left out
}

func defaultLeadExtras(id string) leadExtras {
	h := fnv.New64a()
	h.Write([]byte(id))
	n := h.Sum64()
	return leadExtras{
		internalID:  40000000 + int(n%10000000),
		customerID:  fmt.Sprintf("%016x%016x", n, n^0x9e3779b97f4a7c15),
		description: "Tenho interesse no imóvel. Podem me ligar?",
		seller:      obj{{"id", "00000000000000000000000000000001"}, {"name", "Corretor Exemplo"}, {"email", "corretor@example.com"}},
		source:      obj{{"id", 101}, {"name", "Site"}},
		status:      obj{{"id", 0}, {"alias", "new"}, {"name", "Novo"}},
		created:     "2025-11-14T10:21:33.000-03:00",
		updated:     "2025-11-14T10:21:35.000-03:00",
	}
}

// leadDoc renders the JSON:API document of GET /integration/leads/{id},
// shaped like c2s/lead.json.
func leadDoc(l Lead, ex leadExtras) obj {
	cust := obj{{"id", ex.customerID}}
	for _, f := range []field{{"name", l.Name}, {"email", l.Email}, {"phone", l.Phone}} {
		switch {
		case f.v != "":
			cust = append(cust, f)
		case ex.absent != nil:
			cust = append(cust, field{f.k, ex.absent})
		}
	}
	cust = append(cust, field{"phone2", ""})
	attrs := obj{{"customer", cust}}
	if ex.description != "" {
		attrs = append(attrs, field{"description", ex.description})
	}
	for _, f := range []field{{"product", ex.product}, {"seller", ex.seller}, {"lead_source", ex.source}, {"lead_status", ex.status}} {
		if f.v != nil {
			attrs = append(attrs, f)
		}
	}
	attrs = append(attrs, field{"created_at", ex.created}, field{"updated_at", ex.updated})
	return obj{{"data", obj{{"type", "lead"}, {"id", l.ID}, {"internal_id", ex.internalID}, {"attributes", attrs}}}}
}

// companyName invents a stable company name from the CNPJ and a partner.
func companyName(cnpj, partner string) string {
	parts := strings.Fields(partner)
	last := "EXEMPLO"
	if len(parts) > 0 {
		last = parts[len(parts)-1]
	}
	kinds := []string{"COMERCIO", "SERVICOS", "CONSULTORIA", "IMOVEIS", "TECNOLOGIA", "ALIMENTOS"}
	h := fnv.New32a()
	h.Write([]byte(cnpj))
	return last + " " + kinds[h.Sum32()%uint32(len(kinds))] + " LTDA"
}

// cnpjCheckDigits computes the two check digits of a 12-digit CNPJ base.
func cnpjCheckDigits(base string) string {
	w1 := []int{5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	w2 := []int{6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2}
	dv := func(s string, w []int) byte {
		sum := 0
		for i := range w {
			sum += int(s[i]-'0') * w[i]
		}
		if r := sum % 11; r >= 2 {
			return byte('0' + 11 - r)
		}
		return '0'
	}
	d1 := dv(base, w1)
	d2 := dv(base+string(d1), w2)
	return string([]byte{d1, d2})
}

// ValidCNPJ reports whether s is 14 digits with valid check digits.
func ValidCNPJ(s string) bool {
	return len(s) == 14 && brdata.Digits(s) == s && cnpjCheckDigits(s[:12]) == s[12:]
}
