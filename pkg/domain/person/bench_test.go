package person

import (
	"testing"

	"github.com/leadflow/leadflow/pkg/contracts"
)

// go test -run '^$' -bench BenchmarkParse ./pkg/domain/person/
func BenchmarkParse(b *testing.B) {
	raw := contracts.Read("workapi/cpf.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// go test -run '^$' -bench BenchmarkParseSummary ./pkg/domain/person/
func BenchmarkParseSummary(b *testing.B) {
	p, err := Parse(contracts.Read("workapi/cpf.json"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := p.Summary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSummary(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "summary-bytes") // after the loop, or the runner drops it
}
