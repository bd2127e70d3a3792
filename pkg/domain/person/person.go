// Package person is the product's typed view of a Work API `modulo=cpf`
// payload. Real payloads carry nulls, numbers where strings were expected,
// empty strings and missing sections, so every field is parsed tolerantly:
// an odd shape makes that one field absent and never fails the whole person.
package person

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

// Text is a string field that is present only when the JSON value was a
// string. Numbers, null, booleans, objects and missing keys all decode to "".
type Text string

// UnmarshalJSON accepts any JSON value and keeps only strings.
func (t *Text) UnmarshalJSON(b []byte) error {
	*t = ""
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		// A string without escapes and in valid UTF-8 is its own text
		// (b is a whole JSON value: the decoder checked it).
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			*t = Text(inner)
			return nil
		}
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := jsonx.Unmarshal(b, &s); err == nil {
			*t = Text(s)
		}
	}
	return nil
}

// String returns the value trimmed; "" means absent.
func (t Text) String() string { return strings.TrimSpace(string(t)) }

// Present reports whether the value is a non-blank string.
func (t Text) Present() bool { return t.String() != "" }

// CPF is DadosBasicos.cpf as digits, read by brdata.CPFFromJSON: a string,
// or a number whose leading zeros JSON lost.
type CPF string

// UnmarshalJSON accepts any JSON value; what is not a CPF reads as "".
func (c *CPF) UnmarshalJSON(b []byte) error {
	*c = ""
	var v any
	if jsonx.DecodeFirst(b, &v) == nil {
		*c = CPF(brdata.CPFFromJSON(v))
	}
	return nil
}

// String returns the digits; "" means absent.
func (c CPF) String() string { return string(c) }

// Present reports whether a CPF was given.
func (c CPF) Present() bool { return c != "" }

// Person is the part of the payload the product uses. Raw keeps the whole
// payload untouched.
type Person struct {
	Basic     Basic
	Economic  Economic
	Phones    []Phone
	Emails    []Email
	Addresses []Address
	Companies []Company
	Raw       json.RawMessage
}

// Basic is DadosBasicos.
type Basic struct {
	Nome                Text `json:"nome"`
	CPF                 CPF  `json:"cpf"`
	DataNascimento      Text `json:"dataNascimento"`
	Sexo                Text `json:"sexo"`
	Cor                 Text `json:"cor"`
	NomeMae             Text `json:"nomeMae"`
	NomePai             Text `json:"nomePai"`
	MunicipioNascimento Text `json:"municipioNascimento"`
	Escolaridade        Text `json:"escolaridade"`
	EstadoCivil         Text `json:"estadoCivil"`
	Nacionalidade       Text `json:"nacionalidade"`
	CNS                 Text `json:"cns"`
}

// Economic is DadosEconomicos. PoderAquisitivoRaw and SerasaMosaicRaw keep
// the objects whole for core.entity_financials.metadata.
type Economic struct {
	Renda              Text
	PoderAquisitivo    PoderAquisitivo
	Score              Score
	PoderAquisitivoRaw json.RawMessage // a JSON object or nil
	SerasaMosaicRaw    json.RawMessage // a JSON object or nil
}

// PoderAquisitivo is DadosEconomicos.poderAquisitivo.
type PoderAquisitivo struct {
	Descricao Text `json:"poderAquisitivoDescricao"`
	Faixa     Text `json:"faixaPoderAquisitivo"`
}

// Score is DadosEconomicos.score.
type Score struct {
	CSBA           Text `json:"scoreCSBA"`
	CSBAFaixaRisco Text `json:"scoreCSBAFaixaRisco"`
}

// Phone is one telefones[] entry.
type Phone struct {
	Telefone  Text `json:"telefone"`
	Status    Text `json:"status"`
	Tipo      Text `json:"tipo"`
	Operadora Text `json:"operadora"`
	Whatsapp  Text `json:"whatsapp"`
}

// Email is one emails[] entry.
type Email struct {
	Email        Text `json:"email"`
	Prioridade   Text `json:"prioridade"`
	Qualidade    Text `json:"qualidade"`
	EmailPessoal Text `json:"emailPessoal"`
	Blacklist    Text `json:"blacklist"`
}

// Address is one enderecos[] entry.
type Address struct {
	TipoLogradouro   Text `json:"tipoLogradouro"`
	Logradouro       Text `json:"logradouro"`
	LogradouroNumero Text `json:"logradouroNumero"`
	Complemento      Text `json:"complemento"`
	Bairro           Text `json:"bairro"`
	Cidade           Text `json:"cidade"`
	UF               Text `json:"uf"`
	CEP              Text `json:"cep"`
}

// Company is one empresas[] entry.
type Company struct {
	CNPJ        Text `json:"cnpj"`
	TipoRelacao Text `json:"tipoRelacao"`
	Relacao     Text `json:"relacao"`
	Admissao    Text `json:"admissao"`
	Demissao    Text `json:"demissao"`
}

// ErrNotObject is returned when the payload is not a JSON object.
var ErrNotObject = errors.New("person: payload is not a JSON object")

// Parse decodes a payload tolerantly. It fails only when raw is not a JSON
// object; use HasCPF to know whether it describes a real person.
func Parse(raw []byte) (*Person, error) {
	// The person keeps its own copy, and the raw parts it keeps (the
	// financial objects) point into that copy.
	p := &Person{Raw: append(json.RawMessage(nil), bytes.TrimSpace(raw)...)}
	top, ok := object(p.Raw)
	if !ok {
		return nil, ErrNotObject
	}
	decodeObject(top["DadosBasicos"], &p.Basic)
	if eco, ok := object(top["DadosEconomicos"]); ok {
		p.Economic.Renda.UnmarshalJSON(eco["renda"]) //nolint:errcheck // never fails
		if pa, ok := object(eco["poderAquisitivo"]); ok {
			p.Economic.PoderAquisitivoRaw = eco["poderAquisitivo"]
			decodeFields(pa, &p.Economic.PoderAquisitivo)
		}
		decodeObject(eco["score"], &p.Economic.Score)
		if isObject(eco["serasaMosaic"]) {
			p.Economic.SerasaMosaicRaw = eco["serasaMosaic"]
		}
	}
	p.Phones = decodeList[Phone](top["telefones"])
	p.Emails = decodeList[Email](top["emails"])
	p.Addresses = decodeList[Address](top["enderecos"])
	p.Companies = decodeList[Company](top["empresas"])
	return p, nil
}

// CPF returns DadosBasicos.cpf as digits ("" when absent).
func (p *Person) CPF() string { return p.Basic.CPF.String() }

// HasCPF reports whether the payload is a real person: the Work API's own
// rule is that DadosBasicos.cpf is present.
func (p *Person) HasCPF() bool { return p.Basic.CPF.Present() }

func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := jsonx.UnmarshalShared(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

// isObject reports whether raw is a JSON object. raw is a value the decoder
// already checked (a part of the payload), so its first byte tells.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// decodeFields decodes an object's fields through a map (keys in sorted
// order: of two keys differing only in case, the lower-case one wins).
func decodeFields(m map[string]json.RawMessage, v any) {
	b, _ := jsonx.Marshal(m)
	_ = jsonx.Unmarshal(b, v)
}

// decodeObject fills v from raw when raw is an object. Every field of v is a
// Text, whose decoder never fails, so only a non-object can be skipped.
func decodeObject(raw json.RawMessage, v any) {
	if isObject(raw) {
		_ = jsonx.Unmarshal(raw, v)
	}
}

// decodeList keeps the object entries of a JSON array and drops the rest.
func decodeList[T any](raw json.RawMessage) []T {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var items []json.RawMessage
	if err := jsonx.UnmarshalShared(raw, &items); err != nil {
		return nil
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		if !isObject(it) {
			continue
		}
		var v T
		_ = jsonx.Unmarshal(it, &v)
		out = append(out, v)
	}
	return out
}
