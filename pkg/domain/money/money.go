// Package money parses, scales and prints the Brazilian money amounts found in
// Work API payloads ("8500,50", "R$ 1.630", "R$4082"). Everything is decimal:
// float64 stores 2,675 as 2,67499… and so rounds it to 2,67, not 2,68.
package money

import (
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/shopspring/decimal"
)

// DefaultMultiplier is INCOME_MULTIPLIER when the variable is unset.
const DefaultMultiplier = "1.9"

var (
	// 1.234 or 1.234.567: dots that can only be thousands separators.
	grouped = regexp.MustCompile(`^[0-9]{1,3}(?:\.[0-9]{3})+$`)
	plain   = regexp.MustCompile(`^[0-9]+$`)
	dotted  = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	// An amount after R$: digits, with . or , only between digits so that
	// sentence punctuation ("R$ 10, ou") is not swallowed.
	amountRE = regexp.MustCompile(`R\$[\s\x{00A0}]*([0-9]+(?:[.,][0-9]+)*)`)

	half = decimal.New(5, -1)
)

// Parse reads a non-negative amount written the Brazilian way, per
// MESSAGE.md: an optional "R$" prefix and spaces are ignored; with a comma,
// dots group thousands and the comma is the decimal separator; without one,
// "1.234" and "1.234.567" are grouped thousands and any other dot is a
// decimal point. Signs, letters, several commas, misplaced dots and empty
// text are rejected: an income is never negative, and guessing would write a
// wrong figure into core.entity_financials.
func Parse(text string) (decimal.Decimal, bool) {
	s := strings.TrimSpace(text)
	s = strings.TrimPrefix(s, "R$")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return decimal.Decimal{}, false
	}
	var canonical string
	if intPart, frac, ok := strings.Cut(s, ","); ok {
		if !plain.MatchString(frac) {
			return decimal.Decimal{}, false // also rejects a second comma
		}
		if !plain.MatchString(intPart) && !grouped.MatchString(intPart) {
			return decimal.Decimal{}, false
		}
		canonical = strings.ReplaceAll(intPart, ".", "") + "." + frac
	} else {
		switch {
		case grouped.MatchString(s):
			canonical = strings.ReplaceAll(s, ".", "")
		case plain.MatchString(s), dotted.MatchString(s):
			canonical = s
		default:
			return decimal.Decimal{}, false
		}
	}
	d, err := decimal.NewFromString(canonical)
	if err != nil {
		return decimal.Decimal{}, false
	}
	return d, true
}

// Multiply returns amount × multiplier rounded half-up to cents. Half-up is
// done explicitly (floor(x·100 + 0.5) / 100, exact with Shift) rather than with
// decimal.Round, which rounds half away from zero; the two agree on the
// non-negative amounts the product handles, and this way the rule is the one
// MESSAGE.md and DB.md name even for a negative input.
func Multiply(amount, multiplier decimal.Decimal) decimal.Decimal {
	return roundHalfUpCents(amount.Mul(multiplier))
}

func roundHalfUpCents(d decimal.Decimal) decimal.Decimal {
	return d.Shift(2).Add(half).Floor().Shift(-2)
}

// Format prints d as "16.150,95": dots group thousands, a comma separates
// exactly two decimals (rounded half-up), a negative value has a leading "-".
func Format(d decimal.Decimal) string {
	fixed := roundHalfUpCents(d).StringFixed(2) // "-16150.95"
	neg := strings.HasPrefix(fixed, "-")
	fixed = strings.TrimPrefix(fixed, "-")
	intPart, frac, _ := strings.Cut(fixed, ".")
	var b strings.Builder
	b.Grow(len(fixed) + len(fixed)/3 + 1)
	if neg && strings.Trim(intPart+frac, "0") != "" {
		b.WriteByte('-')
	}
	for i := 0; i < len(intPart); i++ {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteByte(intPart[i])
	}
	b.WriteByte(',')
	b.WriteString(frac)
	return b.String()
}

// ScaleRange rewrites every "R$ <amount>" (or "R$<amount>") in text as
// "R$ <Format(Multiply(amount, multiplier))>", keeping the rest of the text:
// "De R$ 8168 até R$ 12252" × 1.9 gives "De R$ 15.519,20 até R$ 23.278,80".
// An amount Parse rejects is left as it was.
func ScaleRange(text string, multiplier decimal.Decimal) string {
	return amountRE.ReplaceAllStringFunc(text, func(m string) string {
		sub := amountRE.FindStringSubmatch(m)
		amount, ok := Parse(sub[1])
		if !ok {
			return m
		}
		return "R$ " + Format(Multiply(amount, multiplier))
	})
}

// ErrMultiplier is returned by ParseMultiplier for an invalid value.
var ErrMultiplier = errors.New("money: INCOME_MULTIPLIER must be a positive decimal such as 1.9")

// ParseMultiplier reads INCOME_MULTIPLIER: digits with an optional dot
// decimal point ("1.9", "2", "0.75"), greater than zero. Commas, signs and
// exponents are refused so that a typo cannot silently scale every income.
func ParseMultiplier(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	if !plain.MatchString(s) && !dotted.MatchString(s) {
		return decimal.Decimal{}, ErrMultiplier
	}
	d, err := decimal.NewFromString(s)
	if err != nil || !d.IsPositive() {
		return decimal.Decimal{}, ErrMultiplier
	}
	return d, nil
}
