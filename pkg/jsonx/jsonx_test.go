package jsonx_test

import (
	stdjson "encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/jsonx"
)

type doc struct {
	Name  string             `json:"name"`
	N     int                `json:"n"`
	Raw   stdjson.RawMessage `json:"raw"`
	Items []stdjson.RawMessage
}

// Both decoders give what encoding/json gives, and fail where it fails.
func TestDecodesAsEncodingJSON(t *testing.T) {
	inputs := []string{
		`{"name":"a","n":1,"raw":{"x":[1,2,{"y":null}]},"items":[1,"two",{"3":3}]}`,
		` {"NAME":"case-insensitive","raw":"s\u00e9","Items":[]} `,
		"{\"name\":\"invalid \xff UTF-8 \xc3\",\"n\":2}", // replaced by U+FFFD, as encoding/json does
		`{"name":"x"} trailing`,
		`{"name":1}`,
		`{"name":"x"`,
		`[]`,
		`null`,
	}
	for _, in := range inputs {
		var want doc
		wantErr := stdjson.Unmarshal([]byte(in), &want)
		for name, fn := range map[string]func([]byte, any) error{"Unmarshal": jsonx.Unmarshal, "UnmarshalShared": jsonx.UnmarshalShared} {
			var got doc
			err := fn([]byte(in), &got)
			if (err == nil) != (wantErr == nil) {
				t.Errorf("%s(%s): err %v, encoding/json says %v", name, in, err, wantErr)
				continue
			}
			if wantErr == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("%s(%s) = %+v, encoding/json gives %+v", name, in, got, want)
			}
		}
	}
}

// UnmarshalShared's raw values point into the input: no copy.
func TestUnmarshalSharedDoesNotCopyRawValues(t *testing.T) {
	in := []byte(`{"raw":{"big":"payload"}}`)
	var d doc
	if err := jsonx.UnmarshalShared(in, &d); err != nil {
		t.Fatal(err)
	}
	in[7] = '['
	if d.Raw[0] != '[' {
		t.Fatalf("raw %s was copied", d.Raw)
	}
}

// DecodeFirst reads as a json.Decoder with UseNumber reads one value.
func TestDecodeFirstAsADecoder(t *testing.T) {
	for _, in := range []string{`{"code":429,"cpf":"0123","n":1.50}`, `{"a":[1,{"b":2e3}]} trailing`, `[1,2]`, `"text"`, `{"a":`, `<html>`} {
		var want, got any
		dec := stdjson.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		wantErr := dec.Decode(&want)
		err := jsonx.DecodeFirst([]byte(in), &got)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeFirst(%s) = %#v, %v; a Decoder gives %#v, %v", in, got, err, want, wantErr)
		}
	}
}

// DecodeOne accepts and decodes what a Decoder with UseNumber reads when
// nothing but whitespace follows, and refuses everything else.
func TestDecodeOneAsADecoderThatReadsToTheEnd(t *testing.T) {
	for _, in := range []string{`{"id":"a1","n":1.50,"c":{"phone":11987654321}}`, "[{\"a\":1}]\n", " \"text\" ", `{"a":1} {"b":2}`,
		`{"a":1} trailing`, `{"a":1}]`, `{"a":`, ``, `   `, `<html>`, "{\"name\":\"Jo\xffo\"}", `{"a":1,"a":2}`, `{"a":"\u00e9\ud800"}`} {
		var want, got any
		dec := stdjson.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		wantErr := dec.Decode(&want)
		if wantErr == nil {
			if _, terr := dec.Token(); terr != io.EOF {
				wantErr, want = fmt.Errorf("not at the end: %v", terr), nil
			}
		}
		err := jsonx.DecodeOne([]byte(in), &got)
		if err != nil {
			got = nil
		}
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeOne(%q) = %#v, %v; a Decoder read to the end gives %#v, %v", in, got, err, want, wantErr)
		}
	}
}

type encoded struct {
	Name   string             `json:"name"`
	Skip   string             `json:"-"`
	Empty  string             `json:"empty,omitempty"`
	N      float64            `json:"n"`
	Raw    stdjson.RawMessage `json:"raw,omitempty"`
	When   time.Time          `json:"when"`
	Money  decimal.Decimal    `json:"money"`
	Num    stdjson.Number     `json:"num,omitempty"`
	Ptr    *int               `json:"ptr"`
	List   []string           `json:"list"`
	Map    map[string]any     `json:"map,omitempty"`
	AsText int                `json:"as_text,string"`
	inner  int
}

// Marshal writes the very bytes encoding/json.Marshal writes, and fails
// where it fails, for the kinds of values the product encodes with it.
func TestEncodesAsEncodingJSON(t *testing.T) {
	one := 1
	payload := contracts.Read("workapi/cpf.json")
	var doc any
	if err := stdjson.Unmarshal(payload, &doc); err != nil {
		t.Fatal(err)
	}
	p, err := person.Parse(payload)
	if err != nil {
		t.Fatal(err)
	}
	summary, err := p.Summary()
	if err != nil {
		t.Fatal(err)
	}
	values := []any{
		nil, true, 0, -1.5, 1e21, 1e-7, 123456789.125, "<b>&'\"\u2028\u2029 é \xff\xc3",
		map[string]any{"b": 1, "a": "<x>", "c": []any{nil, 2.5, "x"}, "d": map[string]any{}, "e": []string(nil)},
		map[string]string{"z": "1", "a": "2"},
		encoded{Name: "a", Skip: "x", N: 3, Raw: stdjson.RawMessage(" { \"k\" : [1, 2] } "), When: time.Date(2026, 12, 7, 10, 0, 0, 123, time.UTC),
			Money: decimal.RequireFromString("1234.50"), Num: "12.0", Ptr: &one, Map: map[string]any{"y": nil}, AsText: 7, inner: 1},
		encoded{},
		encoded{Raw: stdjson.RawMessage(`{"broken"`)},
		[]map[string]string{{"cpf": "***.***.***-**", "role": "phone"}},
		doc, p, stdjson.RawMessage(summary),
		events.LeadResolved{Phone: "5511987654321", Email: "a@b.c", Persons: []events.ResolvedPerson{{CPF: "31860457207", Role: events.RoleBoth}}},
		events.LeadEnriched{Persons: []events.EnrichedPerson{{CPF: "31860457207", Role: events.RolePhone, EntityID: "e1", Paid: true, Person: summary}}},
		events.LeadEnriched{},
		events.LeadNotified{MessageHash: "ab", Route: "gateway", Status: "sent"},
		events.LeadUnresolved{Reason: "no <CPF> found"},
	}
	for i, v := range values {
		want, wantErr := stdjson.Marshal(v)
		got, err := jsonx.Marshal(v)
		if (err == nil) != (wantErr == nil) {
			t.Errorf("value %d: err %v, encoding/json says %v", i, err, wantErr)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("value %d:\n got  %s\n want %s", i, got, want)
		}
	}
}

// BenchmarkMarshal encodes a lead.enriched event's data (one person's
// summary) with encoding/json and with Marshal.
func BenchmarkMarshal(b *testing.B) {
	p, err := person.Parse(contracts.Read("workapi/cpf.json"))
	if err != nil {
		b.Fatal(err)
	}
	summary, err := p.Summary()
	if err != nil {
		b.Fatal(err)
	}
	data := events.LeadEnriched{Phone: "5511987654321", Email: "a@b.c",
		Persons: []events.EnrichedPerson{{CPF: "31860457207", Role: events.RoleBoth, EntityID: "e1", Paid: true, Person: summary}}}
	for name, marshal := range map[string]func(any) ([]byte, error){"encoding-json": stdjson.Marshal, "jsonx": jsonx.Marshal} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := marshal(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
