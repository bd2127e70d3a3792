// Package brdata holds the Brazilian data rules the whole product shares:
// CPF validity, phone and email normalisation. Display formatting and money
// live beside them in this package.
package brdata

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Digits keeps only the ASCII digits of s.
func Digits(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ValidCPF reports whether s is exactly 11 digits with valid check digits.
// Sequences of one repeated digit (111.111.111-11) pass the arithmetic but are
// not issued, so they are rejected.
func ValidCPF(s string) bool {
	if len(s) != 11 {
		return false
	}
	allSame := true
	for i := 0; i < 11; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		if s[i] != s[0] {
			allSame = false
		}
	}
	if allSame {
		return false
	}
	d1, d2 := CPFCheckDigits(s[:9])
	return s[9] == d1 && s[10] == d2
}

// CPFCheckDigits computes the two check digits of a 9-digit CPF base.
// It returns '0','0' for a base that is not 9 digits.
func CPFCheckDigits(base string) (byte, byte) {
	if len(base) != 9 {
		return '0', '0'
	}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(base[i]-'0') * (10 - i)
	}
	d1 := (sum * 10) % 11
	if d1 == 10 {
		d1 = 0
	}
	sum = 0
	for i := 0; i < 9; i++ {
		sum += int(base[i]-'0') * (11 - i)
	}
	sum += d1 * 2
	d2 := (sum * 10) % 11
	if d2 == 10 {
		d2 = 0
	}
	return byte('0' + d1), byte('0' + d2)
}

// NormalizePhone applies the Diretrix rule: digits only, and a leading
// country code 55 dropped from 12- or 13-digit numbers. Numbers of other
// lengths are returned as digits, unchanged.
func NormalizePhone(s string) string {
	d := Digits(s)
	if (len(d) == 12 || len(d) == 13) && strings.HasPrefix(d, "55") {
		d = d[2:]
	}
	return d
}

// PlausiblePhone reports whether a normalised phone is DDD + number
// (10 digits landline, 11 digits mobile).
func PlausiblePhone(normalized string) bool {
	return len(normalized) == 10 || len(normalized) == 11
}

// NormalizeEmail trims and lower-cases an email.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// PlausibleEmail is a cheap sanity check: one '@' with text on both sides
// and no whitespace. It is not RFC 5322; it only keeps garbage away from
// paid lookups.
func PlausibleEmail(normalized string) bool {
	at := strings.IndexByte(normalized, '@')
	if at <= 0 || at != strings.LastIndexByte(normalized, '@') || at == len(normalized)-1 {
		return false
	}
	return !strings.ContainsAny(normalized, " \t\r\n")
}

// CPFFromJSON reads a CPF out of a decoded JSON value, the one rule for every
// upstream: a string keeps its digits; a number (json.Number or float64),
// whose leading zeros JSON lost, is padded back to 11 digits. Anything else,
// a fraction or a number of more than 11 digits, is "".
func CPFFromJSON(v any) string {
	switch t := v.(type) {
	case string:
		return Digits(t)
	case json.Number:
		return padCPF(t.String())
	case float64:
		if t < 0 || t >= 1e11 || t != math.Trunc(t) {
			return ""
		}
		return padCPF(strconv.FormatInt(int64(t), 10))
	}
	return ""
}

func padCPF(s string) string {
	if s == "" || len(s) > 11 || strings.ContainsAny(s, ".eE-+") {
		return ""
	}
	return strings.Repeat("0", 11-len(s)) + s
}
