package brdata

import "testing"

func TestValidCPF(t *testing.T) {
	cases := map[string]bool{
		"31860457207":    true,  // contract fixture
		"74291506325":    true,  // contract fixture
		"56028391786":    true,  // contract fixture (parent)
		"31860457208":    false, // wrong second digit
		"31860457217":    false, // wrong first digit
		"11111111111":    false, // repeated digits
		"3186045720":     false, // short
		"318604572070":   false,
		"318.604.572-07": false, // formatted is not digits
		"":               false,
	}
	for in, want := range cases {
		if got := ValidCPF(in); got != want {
			t.Errorf("ValidCPF(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	cases := map[string]string{
		"5511987650123":       "11987650123",
		"+55 (11) 98765-0123": "11987650123",
		"551133021234":        "1133021234",
		"11987650123":         "11987650123",
		"987650123":           "987650123",
		"":                    "",
		"55119876501234":      "55119876501234", // 14 digits: left as is
	}
	for in, want := range cases {
		if got := NormalizePhone(in); got != want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got := NormalizeEmail("  Helena.Duarte@Example.com "); got != "helena.duarte@example.com" {
		t.Fatalf("got %q", got)
	}
	for in, want := range map[string]bool{"a@b.c": true, "@b.c": false, "a@": false, "a@@b": false, "a b@c": false, "": false} {
		if got := PlausibleEmail(in); got != want {
			t.Errorf("PlausibleEmail(%q) = %v", in, got)
		}
	}
}
