package coredb

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/person"
)

// benchPersons returns n copies of the full payload with distinct valid CPFs
// and distinct contacts, so every write creates a new person.
func benchPersons(b *testing.B, n int) []*person.Person {
	base := fixture(b, "workapi/cpf.json")
	out := make([]*person.Person, n)
	for i := range out {
		cpfBase := fmt.Sprintf("%09d", 100000000+i)
		d1, d2 := brdata.CPFCheckDigits(cpfBase)
		p := *base
		p.Basic.CPF = person.CPF(cpfBase + string([]byte{d1, d2}))
		p.Emails = append([]person.Email(nil), base.Emails...)
		for j := range p.Emails {
			p.Emails[j].Email = person.Text(fmt.Sprintf("p%d.%d@example.com", i, j))
		}
		p.Phones = append([]person.Phone(nil), base.Phones...)
		for j := range p.Phones {
			p.Phones[j].Telefone = person.Text(fmt.Sprintf("119%08d", i*4+j))
		}
		out[i] = &p
	}
	return out
}

func BenchmarkWritePerson(b *testing.B) {
	pool := newCoreDB(b)
	w := newTestWriter(pool)
	ctx := context.Background()

	// Each run starts from empty tables with its own b.N new persons.
	b.Run("serial", func(b *testing.B) {
		mustExec(b, pool, `TRUNCATE core.entities, core.addresses CASCADE`)
		persons := benchPersons(b, b.N)
		b.ResetTimer()
		for i := range b.N {
			if _, err := w.WritePerson(ctx, persons[i], "lead"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "persons/s")
	})
	b.Run("parallel", func(b *testing.B) {
		mustExec(b, pool, `TRUNCATE core.entities, core.addresses CASCADE`)
		persons := benchPersons(b, b.N)
		var next atomic.Int64
		b.SetParallelism(4) // more writers than CPUs: they mostly wait on the database
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1) - 1)
				if _, err := w.WritePerson(ctx, persons[i], "lead"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "persons/s")
	})
}
