package sim_test

import (
	"context"
	"testing"

	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/clients/diretrix"
	"github.com/leadflow/leadflow/pkg/clients/httpx"
	"github.com/leadflow/leadflow/pkg/clients/workapi"
	"github.com/leadflow/leadflow/pkg/sim"
)

// BenchmarkClients measures each production client against its simulator
// (zero latency, pacing lifted): calls/s and allocations per call.
func BenchmarkClients(b *testing.B) {
	s := sim.New(sim.Config{Seed: 3, People: 20})
	if _, err := s.StartLocal(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fast := httpx.Policy{Timeout: httpx.C2SPolicy().Timeout}
	direct, _ := c2s.New(c2s.Config{BaseURL: s.C2SBaseURL, Token: s.Config.C2SToken, Policy: fast})
	dir, _ := diretrix.New(diretrix.Config{BaseURL: s.DiretrixBaseURL, User: s.Config.DiretrixUser, Pass: s.Config.DiretrixPass, Policy: fast})
	work, _ := workapi.New(workapi.Config{URL: s.WorkAPIURL, Token: s.Config.WorkToken, Policy: fast})
	ctx := context.Background()
	calls := map[string]func() error{
		"c2s.GetLead":       func() error { _, err := direct.GetLead(ctx, contractLead); return err },
		"diretrix.ByPhone":  func() error { _, err := dir.ByPhone(ctx, "11987650123"); return err },
		"workapi.CPF(paid)": func() error { _, err := work.CPF(ctx, "31860457207"); return err },
	}
	for name, call := range calls {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}
