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
