package brdata

// Display formatting for the C2S message. Each formatter reads the digits of
// its input, so an already-punctuated value formats the same as a bare one;
// a value whose digit count is wrong is returned exactly as given, because
// inventing punctuation for it would make a bad value look valid.

// FormatCPF prints an 11-digit CPF as 318.604.572-07.
func FormatCPF(s string) string {
	d := Digits(s)
	if len(d) != 11 {
		return s
	}
	return d[0:3] + "." + d[3:6] + "." + d[6:9] + "-" + d[9:11]
}

// FormatCNPJ prints a 14-digit CNPJ as 73.820.146/0001-57.
func FormatCNPJ(s string) string {
	d := Digits(s)
	if len(d) != 14 {
		return s
	}
	return d[0:2] + "." + d[2:5] + "." + d[5:8] + "/" + d[8:12] + "-" + d[12:14]
}

// FormatCEP prints an 8-digit CEP as 01000-900.
func FormatCEP(s string) string {
	d := Digits(s)
	if len(d) != 8 {
		return s
	}
	return d[0:5] + "-" + d[5:8]
}

// FormatPhone prints a phone as (11) 98765-0123 (mobile, 11 digits) or
// (11) 3302-1234 (landline, 10 digits) after dropping a country code 55 the
// way NormalizePhone does.
func FormatPhone(s string) string {
	d := NormalizePhone(s)
	switch len(d) {
	case 11:
		return "(" + d[0:2] + ") " + d[2:7] + "-" + d[7:11]
	case 10:
		return "(" + d[0:2] + ") " + d[2:6] + "-" + d[6:10]
	}
	return s
}
