// Package config reads a service's configuration from environment variables.
// A Loader collects every problem instead of stopping at the first, so a
// service started with a bad environment names all offending variables at
// once. Secret values are never echoed.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/domain/money"
)

// Loader reads variables through a lookup function (os.LookupEnv by default).
type Loader struct {
	lookup   func(string) (string, bool)
	problems []string
}

// New reads from the process environment.
func New() *Loader { return &Loader{lookup: os.LookupEnv} }

// FromMap reads from m; for tests.
func FromMap(m map[string]string) *Loader {
	return &Loader{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (l *Loader) get(names ...string) (name, value string, ok bool) {
	for _, n := range names {
		if v, found := l.lookup(n); found && strings.TrimSpace(v) != "" {
			return n, strings.TrimSpace(v), true
		}
	}
	return names[0], "", false
}

func (l *Loader) problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func alias(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return names[0] + " (alias " + strings.Join(names[1:], ", ") + ")"
}

// Required returns the first set variable among names (a name and its
// aliases), recording a problem when none is set.
func (l *Loader) Required(names ...string) string {
	_, v, ok := l.get(names...)
	if !ok {
		l.problem("%s is required", alias(names))
	}
	return v
}

// String returns the variable or def.
func (l *Loader) String(name, def string) string {
	if _, v, ok := l.get(name); ok {
		return v
	}
	return def
}

// URL returns a variable that must be an absolute http(s)/nats URL; def may
// be "" for optional URLs.
func (l *Loader) URL(name, def string, required bool) string {
	_, v, ok := l.get(name)
	if !ok {
		if required {
			l.problem("%s is required", name)
		}
		return def
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		l.problem("%s must be an absolute URL", name)
	}
	return strings.TrimRight(v, "/")
}

// Int returns an integer variable within [min, max].
func (l *Loader) Int(name string, def, min, max int) int {
	_, v, ok := l.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.problem("%s must be an integer between %d and %d", name, min, max)
		return def
	}
	return n
}

// Float returns a non-negative number (rates in events per second).
func (l *Loader) Float(name string, def float64) float64 {
	_, v, ok := l.get(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		l.problem("%s must be a non-negative number", name)
		return def
	}
	return f
}

// Duration returns a Go duration ("30s", "24h"); "0" is allowed.
func (l *Loader) Duration(name string, def time.Duration) time.Duration {
	_, v, ok := l.get(name)
	if !ok {
		return def
	}
	if v == "0" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		l.problem("%s must be a duration such as 30s or 24h", name)
		return def
	}
	return d
}

// Bool returns true/false (also 1/0, yes/no).
func (l *Loader) Bool(name string, def bool) bool {
	_, v, ok := l.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	l.problem("%s must be true or false", name)
	return def
}

// IncomeMultiplier reads INCOME_MULTIPLIER, the one setting every service
// that formats or stores income shares (default money.DefaultMultiplier).
func (l *Loader) IncomeMultiplier() decimal.Decimal {
	const name = "INCOME_MULTIPLIER"
	_, v, ok := l.get(name)
	if !ok {
		v = money.DefaultMultiplier
	}
	d, err := money.ParseMultiplier(v)
	if err != nil {
		l.problem("%s must be a positive decimal such as %s", name, money.DefaultMultiplier)
		return decimal.RequireFromString(money.DefaultMultiplier)
	}
	return d
}

// List returns a comma-separated list without blanks.
func (l *Loader) List(name string, required bool) []string {
	_, v, ok := l.get(name)
	if !ok {
		if required {
			l.problem("%s is required", name)
		}
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if required && len(out) == 0 {
		l.problem("%s must list at least one value", name)
	}
	return out
}

// OneOf returns a variable restricted to allowed values.
func (l *Loader) OneOf(name, def string, allowed ...string) string {
	v := l.String(name, def)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	l.problem("%s must be one of %s", name, strings.Join(allowed, ", "))
	return def
}

// Check records a problem when ok is false (cross-field rules).
func (l *Loader) Check(ok bool, format string, args ...any) {
	if !ok {
		l.problem(format, args...)
	}
}

// Err returns one error naming every problem, or nil.
func (l *Loader) Err() error {
	if len(l.problems) == 0 {
		return nil
	}
	return errors.New("invalid configuration:\n  - " + strings.Join(l.problems, "\n  - "))
}

// File returns an optional variable naming a file, recording a problem when
// it is set and the file cannot be read. The value is a path, not a secret;
// the file's contents are never echoed.
func (l *Loader) File(name string) string {
	_, v, ok := l.get(name)
	if !ok {
		return ""
	}
	st, err := os.Stat(v)
	switch {
	case err != nil:
		l.problem("%s names a file that cannot be read (%s)", name, errReason(err))
	case st.IsDir():
		l.problem("%s names a directory, not a file", name)
	default:
		if f, err := os.Open(v); err != nil {
			l.problem("%s names a file that cannot be read (%s)", name, errReason(err))
		} else {
			f.Close()
		}
	}
	return v
}

func errReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return "unreadable"
}
