package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoaderNamesEveryProblemAtOnce(t *testing.T) {
	l := FromMap(map[string]string{
		"PORT":         "99999",
		"TTL":          "soon",
		"C2S_BASE_URL": "not a url",
		"SECRET":       "hunter2",
		"FLAG":         "maybe",
	})
	l.Required("DATABASE_URL", "DB_URL")
	l.Required("NATS_URL")
	l.Int("PORT", 8080, 1, 65535)
	l.Duration("TTL", time.Hour)
	l.URL("C2S_BASE_URL", "", true)
	l.Bool("FLAG", false)
	l.IncomeMultiplier()
	err := l.Err()
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, want := range []string{"DATABASE_URL (alias DB_URL)", "NATS_URL", "PORT", "TTL", "C2S_BASE_URL", "FLAG"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "not a url") {
		t.Error("values must never be echoed")
	}
}

func TestLoaderDefaultsAndAliases(t *testing.T) {
	l := FromMap(map[string]string{"DB_URL": "postgres://x", "API_KEYS": " a, ,b ", "TTL": "0"})
	if got := l.Required("DATABASE_URL", "DB_URL"); got != "postgres://x" {
		t.Fatalf("alias not honoured: %q", got)
	}
	if got := l.List("API_KEYS", true); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("list = %q", got)
	}
	if l.Duration("TTL", time.Hour) != 0 {
		t.Fatal("0 must be a valid duration")
	}
	if l.Int("PORT", 8080, 1, 65535) != 8080 {
		t.Fatal("default not applied")
	}
	if got := l.IncomeMultiplier(); got.String() != "1.9" {
		t.Fatalf("decimal default = %s", got)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	f := dir + "/creds"
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := FromMap(map[string]string{"OK": f, "MISSING": dir + "/nope", "DIR": dir})
	if l.File("OK") != f || l.File("UNSET") != "" {
		t.Fatal("wrong values")
	}
	l.File("MISSING")
	l.File("DIR")
	err := l.Err()
	if err == nil || !strings.Contains(err.Error(), "MISSING names a file that cannot be read (no such file)") ||
		!strings.Contains(err.Error(), "DIR names a directory") || strings.Contains(err.Error(), "OK") {
		t.Fatalf("err = %v", err)
	}
}
