package brdata

import "testing"

func TestFormatters(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) string
		in   string
		want string
	}{
		{"cpf", FormatCPF, "31860457207", "318.604.572-07"},
		{"cpf punctuated", FormatCPF, "318.604.572-07", "318.604.572-07"},
		{"cpf leading zero", FormatCPF, "01234567890", "012.345.678-90"},
		{"cpf short", FormatCPF, "3186045720", "3186045720"},
		{"cpf long", FormatCPF, "318604572077", "318604572077"},
		{"cpf empty", FormatCPF, "", ""},
		{"cpf text", FormatCPF, "SEM CPF", "SEM CPF"},

		{"cnpj", FormatCNPJ, "73820146000157", "73.820.146/0001-57"},
		{"cnpj punctuated", FormatCNPJ, "73.820.146/0001-57", "73.820.146/0001-57"},
		{"cnpj short", FormatCNPJ, "7382014600015", "7382014600015"},
		{"cnpj empty", FormatCNPJ, "", ""},

		{"cep", FormatCEP, "01000900", "01000-900"},
		{"cep punctuated", FormatCEP, "01000-900", "01000-900"},
		{"cep short", FormatCEP, "1000900", "1000900"},
		{"cep empty", FormatCEP, "", ""},

		{"mobile", FormatPhone, "11987650123", "(11) 98765-0123"},
		{"landline", FormatPhone, "1133021234", "(11) 3302-1234"},
		{"mobile +55", FormatPhone, "5511987650123", "(11) 98765-0123"},
		{"landline +55", FormatPhone, "551133021234", "(11) 3302-1234"},
		{"punctuated", FormatPhone, "+55 (11) 98765-0123", "(11) 98765-0123"},
		{"already formatted", FormatPhone, "(11) 3302-1234", "(11) 3302-1234"},
		{"ddd 55 kept", FormatPhone, "55987650123", "(55) 98765-0123"},
		{"12 digits without 55", FormatPhone, "441133021234", "441133021234"},
		{"short", FormatPhone, "987650123", "987650123"},
		{"empty", FormatPhone, "", ""},
		{"text", FormatPhone, "SEM TELEFONE", "SEM TELEFONE"},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("%s: format(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}
