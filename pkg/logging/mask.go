package logging

import (
	"strings"
	"unicode/utf8"
)

// The masking helpers below are the only way personal data may reach a log
// line (LGPD). Each keeps just enough to correlate by eye without
// identifying anyone.

// CPF keeps the last two digits: "*********07".
func CPF(v string) string { return keepTail(v, 2) }

// Phone keeps the last four characters: "*******0123".
func Phone(v string) string { return keepTail(v, 4) }

// Email keeps the first letter of the local part and the top-level domain:
// "h***@***.com".
func Email(v string) string {
	v = strings.TrimSpace(v)
	at := strings.LastIndexByte(v, '@')
	if at <= 0 {
		return stars(v)
	}
	first, _ := utf8.DecodeRuneInString(v)
	tld := ""
	if dot := strings.LastIndexByte(v[at:], '.'); dot >= 0 {
		tld = v[at+dot:]
	}
	return string(first) + "***@***" + tld
}

// Name keeps the initial of each word: "H. D.".
func Name(v string) string {
	parts := strings.Fields(v)
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		r, _ := utf8.DecodeRuneInString(p)
		out = append(out, string(r)+".")
	}
	return strings.Join(out, " ")
}

// Redact hides a value entirely (income, addresses, free text).
func Redact(v string) string {
	if v == "" {
		return ""
	}
	return "[redacted]"
}

func keepTail(v string, n int) string {
	v = strings.TrimSpace(v)
	if len(v) <= n {
		return stars(v)
	}
	return strings.Repeat("*", len(v)-n) + v[len(v)-n:]
}

func stars(v string) string {
	if v == "" {
		return ""
	}
	return strings.Repeat("*", utf8.RuneCountInString(v))
}
