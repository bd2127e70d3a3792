package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestMasks(t *testing.T) {
	cases := []struct{ got, want, raw string }{
		{CPF("31860457207"), "*********07", "31860457207"},
		{Phone("11987650123"), "*******0123", "11987650123"},
		{Email("helena.duarte@example.com"), "h***@***.com", "helena.duarte@example.com"},
		{Name("Helena Marques Duarte"), "H. M. D.", "Helena"},
		{Redact("8500,50"), "[redacted]", "8500"},
		{CPF("07"), "**", "07"},
		{Email("nobody"), "******", "nobody"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q want %q", c.got, c.want)
		}
		if strings.Contains(c.got, c.raw) && c.raw != "" {
			t.Errorf("%q leaks %q", c.got, c.raw)
		}
	}
}

func TestLoggerCarriesServiceAndCorrelation(t *testing.T) {
	var buf bytes.Buffer
	base := New("resolver", "debug", &buf)
	ctx := WithCorrelationID(context.Background(), "corr-1")
	l := Ctx(ctx, base)
	l.Info().Msg("hello")
	NewWatermill(base).Error("boom", errors.New("x"), watermill.LogFields{"topic": "leads.received"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["service"] != "resolver" || first["correlation_id"] != "corr-1" {
		t.Fatalf("first = %v", first)
	}
	if second["topic"] != "leads.received" || second["level"] != "error" {
		t.Fatalf("second = %v", second)
	}
}
