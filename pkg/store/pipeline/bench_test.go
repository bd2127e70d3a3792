package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/brdata"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// BenchmarkPayloads measures the Postgres side of paying once, serially on
// one connection, as pg-cpu-us/op (the backend's CPU per CPF): a new CPF's
// claim, attempt and stored payload (claim-and-store, what a paid call adds
// to a lead besides the core.* rows), and the read of a stored payload
// (reuse). Compare with BenchmarkWritePerson in pkg/store/coredb.
func BenchmarkPayloads(b *testing.B) {
	ctx := context.Background()
	db := testinfra.NewDatabase(b)
	migrate, err := store.Open(ctx, db, 2, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Migrate(ctx, migrate); err != nil {
		b.Fatal(err)
	}
	migrate.Close()
	payload := json.RawMessage(contracts.Read("workapi/cpf.json"))
	pay := func(context.Context) (json.RawMessage, error) { return payload, nil }
	cpfs := func(round, n int) []string {
		out := make([]string, n)
		for i := range out {
			base := fmt.Sprintf("%09d", 100000000*round+i)
			d1, d2 := brdata.CPFCheckDigits(base)
			out[i] = base + string([]byte{d1, d2})
		}
		return out
	}
	round := 0
	for _, c := range []struct {
		name  string
		reuse pipeline.Reuse
		store bool // the CPFs' payloads are stored before the timed run
	}{
		{"claim-and-store", pipeline.Reuse{New: true}, false},
		{"reuse", pipeline.Reuse{MaxAge: time.Hour}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			round++
			list := cpfs(round, b.N)
			pool, err := store.Open(ctx, db, 1, false)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			p := pipeline.NewPayloads(pool, 0, 0, enrichment.Charge)
			if c.store {
				for _, cpf := range list {
					if _, _, err := p.Fetch(ctx, cpf, pipeline.Reuse{New: true}, pay); err != nil {
						b.Fatal(err)
					}
				}
			}
			backend := testinfra.BackendCPU(b, pool) // its one connection runs every statement
			b.ResetTimer()
			start := backend()
			for _, cpf := range list {
				if _, _, err := p.Fetch(ctx, cpf, c.reuse, pay); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(backend()-start)/float64(b.N), "pg-cpu-us/op")
		})
	}
}
