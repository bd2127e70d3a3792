package coredb

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// benchPersons returns n copies of the full payload with distinct valid CPFs
// and distinct contacts, so every write creates a new person.
func benchPersons(b testing.TB, n int) []*person.Person {
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

// BenchmarkWritePerson writes new persons, serially through the merge
// (sqlPerson) and through the insert-only statement (fresh, sqlNewPerson),
// persons already held again through the merge (serial-repeat), and new
// ones in parallel. pg-cpu-us/op is the CPU time of the serial runs' Postgres
// backend per person (from /proc), the number to compare between the two.
func BenchmarkWritePerson(b *testing.B) {
	pool := newCoreDB(b)
	w := newTestWriter(pool)
	ctx := context.Background()

	// serial writes b.N persons one at a time on one connection, through
	// the insert-only statement when fresh, and reports its backend's CPU.
	// Each run starts from empty tables with its own b.N new persons; with
	// held, they are written once (untimed) first, so the timed writes
	// merge the same payloads into persons core.* already holds (what a
	// lead with a known CPF costs).
	serial := func(b *testing.B, fresh, held bool) {
		mustExec(b, pool, `TRUNCATE core.entities, core.addresses CASCADE`)
		persons := benchPersons(b, b.N)
		if held {
			if _, err := w.WritePersons(ctx, persons, nil, "lead", nil); err != nil {
				b.Fatal(err)
			}
		}
		cfg := pool.Config()
		cfg.MaxConns, cfg.MinConns = 1, 1
		one, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer one.Close()
		backend := testinfra.BackendCPU(b, one)
		w := newTestWriter(one)
		b.ResetTimer()
		start := backend()
		for i := range b.N {
			if _, err := w.WritePersons(ctx, persons[i:i+1], []bool{fresh}, "lead", nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(backend()-start)/float64(b.N), "pg-cpu-us/op")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "persons/s")
	}
	b.Run("serial", func(b *testing.B) { serial(b, false, false) })
	b.Run("serial-fresh", func(b *testing.B) { serial(b, true, false) })
	b.Run("serial-repeat", func(b *testing.B) { serial(b, false, true) })
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
