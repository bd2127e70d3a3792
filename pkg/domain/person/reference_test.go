package person

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/leadflow/leadflow/pkg/contracts"
)

// TestParseMatchesReference: Parse gives what the earlier, slower
// implementation (below, kept for this comparison) gave, on the contract
// payloads and odd shapes.
func TestParseMatchesReference(t *testing.T) {
	inputs := [][]byte{contracts.Read("workapi/cpf.json"), contracts.Read("workapi/cpf_sparse.json"),
		[]byte(`{"DadosBasicos":{"nome":"Jo\u00e3o \"J\"","cpf":12345678909,"sexo":null},"DadosEconomicos":{"renda":1500.5,"poderAquisitivo":{"faixaPoderAquisitivo":"A","FAIXAPODERAQUISITIVO":"B"},"score":"x","serasaMosaic":[]},"telefones":[1,"x",{"telefone":"11"},null,{"telefone":["a"]}],"emails":{},"enderecos":[{"cidade":"S\u00e3o Paulo","uf":"SP"}],"empresas":[{}]}`),
		[]byte(`{"DadosBasicos":"x","DadosEconomicos":[],"telefones":null}`),
		[]byte(` { "DadosBasicos" : { "nome" : " Ana " , "cpf" : "123.456.789-09" } } `),
		[]byte("{\"DadosBasicos\":{\"nome\":\"\xff\xfeAna\"}}"),
	}
	for i, in := range inputs {
		got, gerr := Parse(in)
		want, werr := refParse(in)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("input %d: Parse = %+v, %v; reference %+v, %v", i, got, gerr, want, werr)
		}
	}
}

// Parse decodes a payload tolerantly. It fails only when raw is not a JSON
// object; use HasCPF to know whether it describes a real person.
func refParse(raw []byte) (*Person, error) {
	top, ok := refObject(raw)
	if !ok {
		return nil, ErrNotObject
	}
	p := &Person{Raw: append(json.RawMessage(nil), bytes.TrimSpace(raw)...)}
	refDecodeObjectX(top["DadosBasicos"], &p.Basic)
	if eco, ok := refObject(top["DadosEconomicos"]); ok {
		p.Economic.Renda.UnmarshalJSON(eco["renda"]) //nolint:errcheck // never fails
		if pa, ok := refObject(eco["poderAquisitivo"]); ok {
			p.Economic.PoderAquisitivoRaw = eco["poderAquisitivo"]
			refDecodeFields(pa, &p.Economic.PoderAquisitivo)
		}
		refDecodeObjectX(eco["score"], &p.Economic.Score)
		if _, ok := refObject(eco["serasaMosaic"]); ok {
			p.Economic.SerasaMosaicRaw = eco["serasaMosaic"]
		}
	}
	p.Phones = refDecodeList[Phone](top["telefones"])
	p.Emails = refDecodeList[Email](top["emails"])
	p.Addresses = refDecodeList[Address](top["enderecos"])
	p.Companies = refDecodeList[Company](top["empresas"])
	return p, nil
}

func refObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

// decodeObject fills v from raw when raw is an object. Every field of v is a
// Text, whose decoder never fails, so only a non-object can be skipped.
func refDecodeObjectX(raw json.RawMessage, v any) {
	if _, ok := refObject(raw); ok {
		_ = json.Unmarshal(raw, v)
	}
}

func refDecodeFields(m map[string]json.RawMessage, v any) {
	b, _ := json.Marshal(m)
	_ = json.Unmarshal(b, v)
}

// decodeList keeps the object entries of a JSON array and drops the rest.
func refDecodeList[T any](raw json.RawMessage) []T {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil
	}
	out := make([]T, 0, len(items))
	for _, it := range items {
		if _, ok := refObject(it); !ok {
			continue
		}
		var v T
		_ = json.Unmarshal(it, &v)
		out = append(out, v)
	}
	return out
}
