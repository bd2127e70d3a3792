package ops

import (
	"regexp"
	"strings"

	"github.com/leadflow/leadflow/pkg/logging"
)

func nameMask(v string) string  { return logging.Name(v) }
func phoneMask(v string) string { return logging.Phone(v) }
func emailMask(v string) string { return logging.Email(v) }
func cpfMask(v string) string   { return logging.CPF(v) }
func redact(v string) string    { return logging.Redact(v) }

var (
	// digitRun is a CPF or phone in free text, punctuated or not.
	digitRun  = regexp.MustCompile(`\+?\d[\d.\-() ]{6,}\d`)
	emailText = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
)

// maskDigits masks CPFs, phones and emails inside free text. Ids and
// timestamps are left alone (see isIdentifierKey) so an operator can still
// correlate.
func maskDigits(s string) string {
	s = emailText.ReplaceAllStringFunc(s, logging.Email)
	return digitRun.ReplaceAllStringFunc(s, func(m string) string {
		digits := 0
		for _, r := range m {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits < 8 {
			return m
		}
		return logging.CPF(m)
	})
}

// isIdentifierKey names keys whose values are non-personal ids or times.
func isIdentifierKey(k string) bool {
	switch k {
	case "id", "type", "source", "stage", "status", "route", "role", "action", "original_subject", "schema_version", "message_hash":
		return true
	}
	return strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "_source")
}
