package coredb

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/money"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/jsonx"
	"github.com/leadflow/leadflow/pkg/store"
)

// This file turns a person.Person into the values DB.md asks for. It is pure
// (no database) so every rule can be unit-tested on its own.

// entityRow holds core.entities values. Empty strings become NULL.
type entityRow struct {
	cpf, name, canonicalName, leadID string
}

type profileRow struct {
	sex, birthDate, nationality, maritalStatus, educationLevel string
	metadata                                                   []byte
}

type financialRow struct {
	income      string // decimal text with 2 places, "" = NULL
	creditScore *int32
	riskScore   string // "0.30", "" = NULL
	metadata    []byte
}

type emailRow struct {
	email    string
	verified bool
	metadata string
}

type phoneRow struct {
	phone, phoneType, carrier, metadata string
	whatsapp                            bool
}

type addressRow struct {
	streetType, street, number, complement, neighborhood, city, state, zipCode string
}

// personRows is everything one person writes.
type personRows struct {
	entity    entityRow
	profile   profileRow
	financial *financialRow // nil: no income and no score, nothing to write
	emails    []emailRow
	phones    []phoneRow
	addresses []addressRow
}

// maxIncome keeps reported_income inside numeric(14,2): an absurd renda must
// not fail the whole person on a numeric overflow.
var maxIncome = decimal.New(1, 12)

func deriveRows(p *person.Person, cpf, leadID string, multiplier decimal.Decimal) personRows {
	b := p.Basic
	name := text(b.Nome)
	r := personRows{
		entity: entityRow{cpf: cpf, name: name, canonicalName: strings.ToUpper(name), leadID: clean(strings.TrimSpace(leadID))},
		profile: profileRow{
			sex:            sexOf(text(b.Sexo)),
			birthDate:      birthDateOf(text(b.DataNascimento)),
			nationality:    text(b.Nacionalidade),
			maritalStatus:  text(b.EstadoCivil),
			educationLevel: text(b.Escolaridade),
		},
	}

	meta := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			meta[k] = v
		}
	}
	put("mother_name", text(b.NomeMae))
	if father := text(b.NomePai); fold(father) != "sem informacao" {
		put("father_name", father)
	}
	put("cor", text(b.Cor))
	put("municipio_nascimento", text(b.MunicipioNascimento))
	put("cns", text(b.CNS))
	r.profile.metadata = mustJSON(meta)

	r.financial = financialOf(p.Economic, multiplier)

	seenEmail := map[string]bool{}
	for _, e := range p.Emails {
		addr := clean(brdata.NormalizeEmail(e.Email.String()))
		if addr == "" || seenEmail[addr] {
			continue
		}
		seenEmail[addr] = true
		q := fold(text(e.Qualidade))
		r.emails = append(r.emails, emailRow{
			email:    addr,
			verified: q == "bom" || q == "otimo",
			metadata: string(mustJSON(map[string]*string{
				"prioridade":    nullable(text(e.Prioridade)),
				"qualidade":     nullable(text(e.Qualidade)),
				"email_pessoal": nullable(text(e.EmailPessoal)),
				"blacklist":     nullable(text(e.Blacklist)),
			})),
		})
	}

	seenPhone := map[string]bool{}
	for _, ph := range p.Phones {
		num := brdata.NormalizePhone(ph.Telefone.String())
		if num == "" || seenPhone[num] {
			continue
		}
		seenPhone[num] = true
		r.phones = append(r.phones, phoneRow{
			phone:     num,
			phoneType: phoneTypeOf(text(ph.Tipo)),
			carrier:   text(ph.Operadora),
			whatsapp:  strings.EqualFold(text(ph.Whatsapp), "SIM"),
			metadata:  string(mustJSON(map[string]*string{"status": nullable(text(ph.Status))})),
		})
	}

	type addrKey struct{ street, number, zip string }
	seenAddr := map[addrKey]bool{}
	for _, a := range p.Addresses {
		street, zip := text(a.Logradouro), brdata.Digits(text(a.CEP))
		if street == "" && !a.CEP.Present() {
			continue
		}
		row := addressRow{
			streetType:   text(a.TipoLogradouro),
			street:       street,
			number:       text(a.LogradouroNumero),
			complement:   text(a.Complemento),
			neighborhood: text(a.Bairro),
			city:         text(a.Cidade),
			state:        text(a.UF),
			zipCode:      zip,
		}
		k := addrKey{row.street, row.number, row.zipCode}
		if seenAddr[k] {
			continue
		}
		seenAddr[k] = true
		r.addresses = append(r.addresses, row)
	}
	return r
}

func financialOf(eco person.Economic, multiplier decimal.Decimal) *financialRow {
	f := &financialRow{}
	if amount, ok := money.Parse(eco.Renda.String()); ok {
		if v := money.Multiply(amount, multiplier); v.Abs().LessThan(maxIncome) {
			f.income = v.StringFixed(2)
		}
	}
	if n, err := strconv.ParseInt(eco.Score.CSBA.String(), 10, 32); err == nil {
		v := int32(n)
		f.creditScore = &v
	}
	f.riskScore = riskOf(eco.Score.CSBAFaixaRisco.String())
	if f.income == "" && f.creditScore == nil && f.riskScore == "" {
		return nil
	}
	f.metadata = mustJSON(map[string]json.RawMessage{
		"poder_aquisitivo": rawObject(eco.PoderAquisitivoRaw),
		"mosaic":           rawObject(eco.SerasaMosaicRaw),
	})
	return f
}

// sexOf keeps the first letter of "F - FEMININO" when it is M or F.
func sexOf(s string) string {
	if s == "" {
		return ""
	}
	switch c := strings.ToUpper(s[:1]); c {
	case "M", "F":
		return c
	}
	return ""
}

// birthDateOf turns DD/MM/YYYY into an ISO date, "" when it does not parse.
func birthDateOf(s string) string {
	t, err := time.Parse("02/01/2006", s)
	if err != nil {
		return ""
	}
	return t.Format("2006-01-02")
}

// riskOf maps scoreCSBAFaixaRisco by its first word, accents ignored.
func riskOf(s string) string {
	words := strings.FieldsFunc(fold(s), func(r rune) bool { return !unicode.IsLetter(r) })
	if len(words) == 0 {
		return ""
	}
	first := words[0]
	if first == "muito" && len(words) > 1 {
		switch words[1] {
		case "baixo":
			return "0.10"
		case "alto":
			return "0.90"
		}
		return ""
	}
	switch first {
	case "baixissimo":
		return "0.10"
	case "baixo":
		return "0.30"
	case "medio":
		return "0.50"
	case "alto":
		return "0.70"
	case "altissimo":
		return "0.90"
	}
	return ""
}

func phoneTypeOf(tipo string) string {
	t := strings.ToUpper(tipo)
	switch {
	case strings.Contains(t, "MÓVEL"), strings.Contains(t, "MOVEL"), strings.Contains(t, "CELULAR"):
		return "mobile"
	case strings.Contains(t, "RESIDENCIAL"), strings.Contains(t, "COMERCIAL"), strings.Contains(t, "FIXO"):
		return "landline"
	}
	return "mobile"
}

// accentFrom/accentTo are the Portuguese accents folded by name search. The
// same pair feeds SQL translate() so both sides fold identically without the
// unaccent extension.
const (
	accentFrom = "ÁÀÂÃÄáàâãäÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÕÖóòôõöÚÙÛÜúùûüÇçÑñ"
	accentTo   = "AAAAAaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcNn"
)

var accentMap = func() map[rune]rune {
	from, to := []rune(accentFrom), []rune(accentTo)
	if len(from) != len(to) {
		panic("coredb: accent tables differ in length")
	}
	m := make(map[rune]rune, len(from))
	for i, r := range from {
		m[r] = to[i]
	}
	return m
}()

// fold lower-cases s and strips Portuguese accents.
func fold(s string) string {
	return strings.ToLower(strings.Map(func(r rune) rune {
		if to, ok := accentMap[r]; ok {
			return to
		}
		return r
	}, s))
}

// text is a trimmed field with NUL bytes removed: PostgreSQL rejects them in
// text and jsonb, and one odd field must not fail the whole person.
func text(t person.Text) string { return clean(t.String()) }

func clean(s string) string { return strings.TrimSpace(store.Text(s)) }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rawObject returns a kept upstream object ready for jsonb, or null.
func rawObject(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return json.RawMessage("null")
	}
	return store.JSONB(raw)
}

// mustJSON marshals values built here (maps of strings and raw JSON), which
// cannot fail.
func mustJSON(v any) []byte {
	b, err := jsonx.Marshal(v)
	if err != nil {
		panic("coredb: " + err.Error())
	}
	return b
}
