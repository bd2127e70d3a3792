package sim

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// obj is a JSON object that keeps its key order. The simulated upstreams
// render records the way the real ones do (DadosBasicos before telefones,
// "data" before "id"), which makes captured bodies easy to compare by eye.
type obj []field

type field struct {
	k string
	v any
}

// null renders an explicit JSON null; a key that is simply not added is absent.
var null = json.RawMessage("null")

// MarshalJSON encodes directly: going through json.Marshal per level would
// re-compact every nested object and make population building slow.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	err := encode(&b, o)
	return b.Bytes(), err
}

func encode(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case obj:
		b.WriteByte('{')
		for i, f := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, f.k)
			b.WriteByte(':')
			if err := encode(b, f.v); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []obj:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			encode(b, e)
		}
		b.WriteByte(']')
	case string:
		writeString(b, x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case nil:
		b.WriteString("null")
	case json.RawMessage:
		b.Write(x)
	default:
		j, err := json.Marshal(x)
		if err != nil {
			return err
		}
		b.Write(j)
	}
	return nil
}

// writeString writes s as a JSON string, leaving UTF-8 as is.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// mustJSON encodes v; obj values skip encoding/json entirely.
func mustJSON(v any) []byte {
	if o, ok := v.(obj); ok {
		var b bytes.Buffer
		b.Grow(1024)
		if err := encode(&b, o); err != nil {
			panic("sim: " + err.Error())
		}
		return b.Bytes()
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("sim: " + err.Error())
	}
	return b
}
