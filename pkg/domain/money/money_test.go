package money

import (
	"math/big"
	"strings"
	"testing"
	"testing/quick"

	"github.com/shopspring/decimal"
)

var mult19 = decimal.RequireFromString("1.9")

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means rejected
	}{
		{"8500,50", "8500.5"},
		{"1.234,56", "1234.56"},
		{"R$ 1.630,50", "1630.5"},
		{"R$ 8168", "8168"},
		{"R$4082", "4082"},
		{"R$ 1.630", "1630"},
		{"1.234.567", "1234567"},
		{"1.234.567,89", "1234567.89"},
		{"1234.5", "1234.5"},
		{"12.34", "12.34"},
		{"1.2345", "1.2345"},
		{"0,01", "0.01"},
		{"  8500,50  ", "8500.5"},
		{"1 234,56", "1234.56"},
		{"0", "0"},
		{"", ""},
		{"   ", ""},
		{"R$", ""},
		{"abc", ""},
		{"12a", ""},
		{"1,2,3", ""},
		{"1.234,5,6", ""},
		{"1,", ""},
		{",5", ""},
		{"1.", ""},
		{".5", ""},
		{"12.34.56", ""},
		{"1.23,45", ""},
		{"-5", ""},
		{"+5", ""},
		{"1e3", ""},
		{"NaN", ""},
		{"１２", ""}, // full-width digits are not ASCII digits
	}
	for _, tt := range tests {
		got, ok := Parse(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("Parse(%q) = %s, want rejection", tt.in, got)
			}
			continue
		}
		if !ok || !got.Equal(decimal.RequireFromString(tt.want)) {
			t.Errorf("Parse(%q) = %s, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
}

func TestMultiply(t *testing.T) {
	tests := []struct{ amount, mult, want string }{
		{"8500.50", "1.9", "16150.95"},
		{"1234.56", "1.9", "2345.66"}, // 2345.664
		{"8168", "1.9", "15519.2"},
		{"0.005", "1", "0.01"},   // a tie rounds up
		{"0.0049", "1", "0"},     // below the tie rounds down
		{"2.675", "1", "2.68"},   // the float64 classic (2.67499…) is exact here
		{"0.025", "1", "0.03"},   // half-up, not banker's
		{"-0.005", "1", "0"},     // half-up is towards +∞ for negatives
		{"-0.015", "1", "-0.01"}, // idem
		{"0", "1.9", "0"},
	}
	for _, tt := range tests {
		got := Multiply(decimal.RequireFromString(tt.amount), decimal.RequireFromString(tt.mult))
		if !got.Equal(decimal.RequireFromString(tt.want)) {
			t.Errorf("Multiply(%s, %s) = %s, want %s", tt.amount, tt.mult, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"16150.95", "16.150,95"},
		{"0", "0,00"},
		{"0.5", "0,50"},
		{"999.999", "1.000,00"},
		{"100", "100,00"},
		{"1000", "1.000,00"},
		{"1234567.8", "1.234.567,80"},
		{"-1234.5", "-1.234,50"},
		{"-0.001", "0,00"},
		{"123456789012345678901234567890", "123.456.789.012.345.678.901.234.567.890,00"},
	}
	for _, tt := range tests {
		if got := Format(decimal.RequireFromString(tt.in)); got != tt.want {
			t.Errorf("Format(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScaleRange(t *testing.T) {
	tests := []struct{ in, want string }{
		{"De R$ 8168 até R$ 12252", "De R$ 15.519,20 até R$ 23.278,80"},
		{"De R$ 1.630 até R$ 4.082", "De R$ 3.097,00 até R$ 7.755,80"},
		{"Acima de R$4082", "Acima de R$ 7.755,80"},
		{"Até R$ 1.630,50.", "Até R$ 3.097,95."},
		{"R$ 10, ou mais", "R$ 19,00, ou mais"},
		{"R$ 1,2,3", "R$ 1,2,3"}, // unparsable amount kept
		{"R$ abc", "R$ abc"},
		{"sem valores", "sem valores"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := ScaleRange(tt.in, mult19); got != tt.want {
			t.Errorf("ScaleRange(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseMultiplier(t *testing.T) {
	good := map[string]string{"1.9": "1.9", "2": "2", " 0.75 ": "0.75"}
	for in, want := range good {
		got, err := ParseMultiplier(in)
		if err != nil || !got.Equal(decimal.RequireFromString(want)) {
			t.Errorf("ParseMultiplier(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if d, err := ParseMultiplier(DefaultMultiplier); err != nil || d.String() != "1.9" {
		t.Errorf("DefaultMultiplier = %s, %v", d, err)
	}
	for _, in := range []string{"", "0", "0.0", "-1.9", "1,9", "1e2", "abc", ".5", "1.", "+2"} {
		if got, err := ParseMultiplier(in); err == nil {
			t.Errorf("ParseMultiplier(%q) = %s, want error", in, got)
		}
	}
}

// brCents writes cents the way the Work API does, with or without grouping.
func brCents(cents uint64, dots bool) string {
	d := decimal.NewFromUint64(cents).Shift(-2)
	s := Format(d)
	if !dots {
		s = strings.ReplaceAll(s, ".", "")
	}
	return s
}

func FuzzParseFormatRoundTrip(f *testing.F) {
	for _, c := range []uint64{0, 1, 99, 100, 850050, 123456, 100000000, 1<<63 - 1} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cents uint64) {
		want := decimal.NewFromUint64(cents).Shift(-2)
		for _, dots := range []bool{true, false} {
			text := brCents(cents, dots)
			got, ok := Parse(text)
			if !ok || !got.Equal(want) {
				t.Fatalf("Parse(%q) = %s, %v; want %s", text, got, ok, want)
			}
			if back := Format(got); back != brCents(cents, true) {
				t.Fatalf("Format(Parse(%q)) = %q", text, back)
			}
		}
		// Whole reais without a comma: "1.234" is grouped thousands.
		reais := cents / 100
		text := Format(decimal.NewFromUint64(reais))
		text = strings.TrimSuffix(text, ",00")
		if got, ok := Parse("R$ " + text); !ok || !got.Equal(decimal.NewFromUint64(reais)) {
			t.Fatalf("Parse(R$ %q) = %s, %v; want %d", text, got, ok, reais)
		}
	})
}

// FuzzParse checks that Parse never panics and that whatever it accepts is
// non-negative and survives Format → Parse at cent precision.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"8500,50", "R$ 1.630", "1.234.567,89", "12.34", "R$4082", "", "1,2,3", "\x00", "R$ R$ 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := Parse(s)
		if !ok {
			return
		}
		if d.IsNegative() {
			t.Fatalf("Parse(%q) = %s, negative", s, d)
		}
		cents := Multiply(d, decimal.NewFromInt(1))
		back, ok := Parse(Format(cents))
		if !ok || !back.Equal(cents) {
			t.Fatalf("Parse(Format(%s)) = %s, %v", cents, back, ok)
		}
		_ = ScaleRange(s, mult19)
	})
}

// TestMultiplyMatchesIntegerCents compares Multiply with exact integer
// arithmetic: amount = cents/100, multiplier = m/10^k, so the result in
// cents is cents·m/10^k rounded half-up, i.e. ⌊(2·cents·m + 10^k) / (2·10^k)⌋.
func TestMultiplyMatchesIntegerCents(t *testing.T) {
	prop := func(cents uint64, m uint32, k uint8) bool {
		k %= 6
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(k)), nil)
		num := new(big.Int).Mul(new(big.Int).SetUint64(cents), big.NewInt(int64(m)))
		num.Mul(num, big.NewInt(2)).Add(num, scale)
		wantCents := num.Div(num, new(big.Int).Mul(scale, big.NewInt(2)))

		amount := decimal.NewFromUint64(cents).Shift(-2)
		mult := decimal.New(int64(m), -int32(k))
		got := Multiply(amount, mult)
		want := decimal.NewFromBigInt(wantCents, -2)
		if !got.Equal(want) {
			t.Logf("Multiply(%s, %s) = %s, want %s", amount, mult, got, want)
			return false
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 5000}); err != nil {
		t.Fatal(err)
	}
	// The shapes the product meets most: reais with cents × 1.9.
	for cents := uint64(0); cents < 20000; cents += 7 {
		if !prop(cents, 19, 1) {
			t.Fatalf("cents %d × 1.9", cents)
		}
	}
}

func BenchmarkScaleRange(b *testing.B) {
	for b.Loop() {
		_ = ScaleRange("De R$ 8168 até R$ 12252", mult19)
	}
}
