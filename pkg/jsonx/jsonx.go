// Package jsonx is the product's JSON decoder for its hot paths (events on
// every hop, Work API payloads): github.com/segmentio/encoding/json, a
// drop-in for encoding/json's Unmarshal that decodes the same values and
// reports the same kinds of errors, about 3× faster on a Work API payload
// (BenchmarkParse in pkg/domain/person).
//
// Marshal is segmentio's encoder too, for the hot paths' own values (event
// data, trace details, core.* metadata): the bytes encoding/json.Marshal
// writes (TestEncodesAsEncodingJSON), in about two thirds of its time
// (BenchmarkMarshal: 3.8 against 5.8 µs for a lead.enriched event's data,
// one person). It does not know
// the omitzero option: the event envelope, the one type that uses it, stays
// with encoding/json (events.Marshal).
package jsonx

import (
	"bytes"

	"github.com/segmentio/encoding/json"
)

// Marshal encodes v as encoding/json.Marshal does (HTML escaped, map keys
// sorted, raw messages checked and compacted), for types without omitzero.
func Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes b into v as encoding/json.Unmarshal does.
func Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// UnmarshalShared is Unmarshal, except that json.RawMessage values in v
// point into b instead of being copied: b must not change while v is in
// use. Events and payloads carry 5-10 kB of Work API JSON per person, which
// is otherwise copied once more at every level that keeps it raw.
func UnmarshalShared(b []byte, v any) error {
	rest, err := json.Parse(b, v, json.DontCopyRawMessage)
	if err != nil {
		return err
	}
	if rest = bytes.TrimLeft(rest, " \t\r\n"); len(rest) != 0 {
		// What Unmarshal reports for trailing bytes.
		return json.Unmarshal(b, new(json.RawMessage))
	}
	return nil
}

// DecodeFirst decodes the first JSON value in b into v, numbers in `any`
// as json.Number, as a json.Decoder with UseNumber does: what follows the
// value is not read.
func DecodeFirst(b []byte, v any) error {
	_, err := json.Parse(b, v, json.UseNumber)
	return err
}

// DecodeOne decodes the one JSON value b holds into v, numbers in `any` as
// json.Number: what a json.Decoder with UseNumber reads, followed by a
// check that only whitespace is left (senders' bodies, such as webhooks).
func DecodeOne(b []byte, v any) error {
	rest, err := json.Parse(b, v, json.UseNumber)
	if err != nil {
		return err
	}
	if rest = bytes.TrimLeft(rest, " \t\r\n"); len(rest) != 0 {
		return errTrailing
	}
	return nil
}

type constError string

func (e constError) Error() string { return string(e) }

const errTrailing = constError("jsonx: data after the JSON value")
