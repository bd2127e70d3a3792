// Package message builds the plain-text note posted on a C2S lead from the
// Work API payload(s) of the person(s) the lead resolved to. The layout is the
// contract in shared/contracts/message/MESSAGE.md and is reproduced byte for
// byte; the goldens beside it are the tests.
package message

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/money"
	"github.com/leadflow/leadflow/pkg/domain/person"
)

// Role says which lead identifier led to a person. The zero value is not a
// role; it formats like a single-source person (no header).
type Role int

// Roles.
const (
	FoundByPhone Role = iota + 1
	FoundByEmail
	FoundByBoth
)

// Subject is one person to describe.
type Subject struct {
	Person *person.Person
	Role   Role
}

// Input is everything the message depends on. LeadPhone and LeadEmail are the
// lead's own identifiers, used only in the two-people section titles.
// Multiplier is INCOME_MULTIPLIER; a zero value means money.DefaultMultiplier
// so that a forgotten field cannot print every income as 0,00.
type Input struct {
	Subjects   []Subject
	LeadPhone  string
	LeadEmail  string
	Multiplier decimal.Decimal
}

const (
	headerSame      = "📞📧 Telefone e e-mail da mesma pessoa"
	headerDifferent = "⚠️ Telefone e e-mail relacionados a PESSOAS DIFERENTES!"

	maxEmails    = 3
	maxPhones    = 3
	maxAddresses = 2
	maxCompanies = 3
)

var defaultMultiplier = decimal.RequireFromString(money.DefaultMultiplier)

// Format renders the message; it always ends with "\n".
//
//   - One subject: the "mesma pessoa" header and a blank line when its Role is
//     FoundByBoth, then the person block.
//   - Two subjects: the "PESSOAS DIFERENTES" header, then one titled section
//     per person, the phone's first (the order is fixed here even if the
//     caller passed the email person first).
//   - No subject: FormatUnresolved(""). The pipeline posts that only when
//     NOTIFY_UNRESOLVED=true.
func Format(in Input) string {
	mult := in.Multiplier
	if mult.IsZero() {
		mult = defaultMultiplier
	}
	var b strings.Builder
	b.Grow(1024 * max(1, len(in.Subjects)))
	switch len(in.Subjects) {
	case 0:
		return FormatUnresolved("")
	case 1:
		s := in.Subjects[0]
		if s.Role == FoundByBoth {
			b.WriteString(headerSame + "\n\n")
		}
		writePerson(&b, s.Person, mult)
	default:
		subjects := slices.Clone(in.Subjects)
		// Stable: an email-found person goes after the others, the rest keep
		// the caller's order.
		slices.SortStableFunc(subjects, func(x, y Subject) int {
			return boolInt(x.Role == FoundByEmail) - boolInt(y.Role == FoundByEmail)
		})
		b.WriteString(headerDifferent + "\n")
		for i, s := range subjects {
			b.WriteString("\n═══ PESSOA " + strconv.Itoa(i+1) + " (")
			if s.Role == FoundByEmail {
				b.WriteString("E-mail: " + clean(brdata.NormalizeEmail(in.LeadEmail)))
			} else {
				b.WriteString("Telefone: " + clean(brdata.FormatPhone(strings.TrimSpace(in.LeadPhone))))
			}
			b.WriteString(") ═══\n")
			writePerson(&b, s.Person, mult)
		}
	}
	return b.String()
}

// Unresolved reasons FormatUnresolved knows how to explain.
const (
	ReasonNoIdentifiers = "no_identifiers" // phone and email missing or invalid
	ReasonNotFound      = "not_found"      // no source knows either identifier
)

// FormatUnresolved is the note for a lead that resolved to nobody. The text
// is fixed and carries no personal data: reason is a machine code and only
// the known codes add an explanation; anything else is ignored rather than
// echoed, since it might hold the lead's phone or email.
func FormatUnresolved(reason string) string {
	const head = "❔ Pessoa não identificada\n\nNão foi possível identificar a pessoa pelo telefone ou pelo e-mail deste lead.\n"
	switch reason {
	case ReasonNoIdentifiers:
		return head + "Motivo: telefone e e-mail ausentes ou inválidos.\n"
	case ReasonNotFound:
		return head + "Motivo: nenhuma fonte conhece o telefone ou o e-mail.\n"
	}
	return head
}

// Hash is the hex SHA-256 of a message body, the notifications ledger's key
// for "this exact text was already posted".
func Hash(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

// section collects the lines of one block section; an empty section is not
// printed at all.
type section struct {
	title string
	lines []string
}

func (s *section) add(line string) { s.lines = append(s.lines, line) }

// field adds "label value" when the value is present.
func (s *section) field(label string, v person.Text, format func(string) string) {
	if !v.Present() {
		return
	}
	val := v.String()
	if format != nil {
		val = format(val)
	}
	s.add(label + clean(val))
}

func writePerson(b *strings.Builder, p *person.Person, mult decimal.Decimal) {
	if p == nil {
		p = &person.Person{} // still prints DADOS PESSOAIS, as the contract requires
	}
	sections := [...]section{
		personal(p.Basic),
		financial(p.Economic, mult),
		emails(p.Emails),
		phones(p.Phones),
		addresses(p.Addresses),
		companies(p.Companies),
	}
	first := true
	for i, s := range sections {
		if i > 0 && len(s.lines) == 0 {
			continue // DADOS PESSOAIS (i == 0) is printed even when empty
		}
		if !first {
			b.WriteByte('\n')
		}
		first = false
		b.WriteString(s.title + "\n")
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
}

func personal(d person.Basic) section {
	s := section{title: "✅ DADOS PESSOAIS"}
	s.field("Nome: ", d.Nome, nil)
	s.field("CPF: ", person.Text(d.CPF), brdata.FormatCPF)
	s.field("Data Nascimento: ", d.DataNascimento, nil)
	s.field("Sexo: ", d.Sexo, nil)
	s.field("Mãe: ", d.NomeMae, nil)
	return s
}

func financial(e person.Economic, mult decimal.Decimal) section {
	s := section{title: "💰 DADOS FINANCEIROS"}
	s.field("Renda: R$ ", e.Renda, func(raw string) string {
		if amount, ok := money.Parse(raw); ok {
			return money.Format(money.Multiply(amount, mult))
		}
		return raw // MESSAGE.md: an unparsable renda prints raw
	})
	s.field("Poder Aquisitivo: ", e.PoderAquisitivo.Descricao, nil)
	s.field("Faixa de Renda: ", e.PoderAquisitivo.Faixa, func(v string) string {
		return money.ScaleRange(v, mult)
	})
	s.field("Score de Crédito: ", e.Score.CSBA, nil)
	s.field("Risco: ", e.Score.CSBAFaixaRisco, nil)
	return s
}

// Lists number only the printed entries: an empty entry takes no slot.

func emails(list []person.Email) section {
	s := section{title: "📧 EMAILS"}
	for _, e := range list {
		if len(s.lines) == maxEmails {
			break
		}
		if !e.Email.Present() {
			continue
		}
		s.add(num(len(s.lines)) + clean(strings.ToLower(e.Email.String())) + " (" + orNA(e.Prioridade) + ")")
	}
	return s
}

func phones(list []person.Phone) section {
	s := section{title: "📱 TELEFONES"}
	for _, p := range list {
		if len(s.lines) == maxPhones {
			break
		}
		if !p.Telefone.Present() {
			continue
		}
		line := num(len(s.lines)) + clean(brdata.FormatPhone(p.Telefone.String())) + " - " + orNA(p.Tipo)
		if p.Whatsapp.String() == "SIM" {
			line += " ✅"
		}
		s.add(line)
	}
	return s
}

func addresses(list []person.Address) section {
	s := section{title: "🏠 ENDEREÇOS"}
	for _, a := range list {
		if len(s.lines) == maxAddresses {
			break
		}
		if !a.Logradouro.Present() && !a.CEP.Present() {
			continue
		}
		s.add(num(len(s.lines)) + address(a))
	}
	return s
}

// address is <logradouro>[ <numero>][, <bairro>][ - <cidade>[/<uf>]][ - CEP: <cep>].
func address(a person.Address) string {
	var b strings.Builder
	b.WriteString(a.Logradouro.String())
	if a.LogradouroNumero.Present() {
		b.WriteString(" " + a.LogradouroNumero.String())
	}
	if a.Bairro.Present() {
		b.WriteString(", " + a.Bairro.String())
	}
	if a.Cidade.Present() {
		b.WriteString(" - " + a.Cidade.String())
		if a.UF.Present() {
			b.WriteString("/" + a.UF.String())
		}
	}
	if a.CEP.Present() {
		b.WriteString(" - CEP: " + brdata.FormatCEP(a.CEP.String()))
	}
	out := b.String()
	if !a.Logradouro.Present() {
		// A CEP-only entry would otherwise read "1.  - CEP: …": drop the
		// separator that had nothing before it.
		out = strings.TrimLeft(out, " ,-")
	}
	return clean(out)
}

func companies(list []person.Company) section {
	s := section{title: "🏢 EMPRESAS"}
	for _, c := range list {
		if len(s.lines) == maxCompanies {
			break
		}
		if !c.CNPJ.Present() {
			continue
		}
		relacao := "SOCIO"
		if c.Relacao.Present() {
			relacao = c.Relacao.String()
		}
		s.add(num(len(s.lines)) + "CNPJ: " + clean(brdata.FormatCNPJ(c.CNPJ.String())) + " - " + clean(relacao))
	}
	return s
}

func num(printed int) string { return strconv.Itoa(printed+1) + ". " }

func orNA(t person.Text) string {
	if t.Present() {
		return clean(t.String())
	}
	return "N/A"
}

// clean turns control characters (an embedded "\n" above all) into spaces:
// one value must stay on its one line, or a payload could forge lines of
// the message.
func clean(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
