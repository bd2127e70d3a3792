package store

import (
	"strings"
	"unicode/utf8"
)

// JSONB returns raw as Postgres jsonb accepts it, changing nothing else:
// jsonb refuses invalid UTF-8, the \u0000 escape and lone UTF-16 surrogate
// escapes, which upstream payloads may carry. Invalid bytes and lone
// surrogates become U+FFFD, \u0000 is dropped. Every valid JSON document is
// therefore storable; nil stays nil.
func JSONB(raw []byte) []byte {
	if raw == nil {
		return nil
	}
	if !utf8.Valid(raw) {
		raw = []byte(strings.ToValidUTF8(string(raw), "\uFFFD"))
	}
	if !strings.Contains(string(raw), `\u`) && !strings.Contains(string(raw), `\U`) {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			out = append(out, c)
			continue
		}
		if raw[i+1] != 'u' {
			out = append(out, c, raw[i+1]) // any other escape, including \\
			i++
			continue
		}
		cp, ok := hex4(raw, i+2)
		switch {
		case !ok:
			out = append(out, raw[i:i+2]...)
			i++
			continue
		case cp == 0:
			// dropped
		case cp >= 0xD800 && cp <= 0xDBFF:
			if lo, ok := hex4(raw, i+8); ok && i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' && lo >= 0xDC00 && lo <= 0xDFFF {
				out = append(out, raw[i:i+12]...)
				i += 6
			} else {
				out = append(out, `\ufffd`...)
			}
		case cp >= 0xDC00 && cp <= 0xDFFF:
			out = append(out, `\ufffd`...)
		default:
			out = append(out, raw[i:i+6]...)
		}
		i += 5
	}
	return out
}

// Text returns s as a Postgres text column accepts it: valid UTF-8 without
// NUL characters.
func Text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}
