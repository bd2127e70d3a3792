package service_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/sim"
)

// BenchmarkEnrich measures the enricher's use case end to end on real
// Postgres and JetStream with every payload already stored (the no-cost
// path: replays, redeliveries, repeat leads): read the payload, write the
// person to core.*, record the trace, publish lead.enriched. One person per
// lead, each lead new; persons cycle through a synthetic population.
func BenchmarkEnrich(b *testing.B) {
	const people = 2000
	r := newRig(b, sim.Config{Seed: 7, People: people, Leads: -1})
	e := r.newInstance(b, instanceOptions{ttl: 24 * time.Hour})
	ctx := context.Background()
	var cpfs []string
	for _, p := range r.sims.Pop.People() {
		r.exec(b, `INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at) VALUES ($1, $2, now())`, p.CPF, []byte(p.Raw))
		cpfs = append(cpfs, p.CPF)
	}
	var seq atomic.Int64
	// run returns the error: RunParallel's goroutines may not call Fatal.
	run := func(b *testing.B) error {
		i := seq.Add(1)
		cpf := cpfs[int(i)%len(cpfs)]
		recv, err := events.NewReceived(leadID(fmt.Sprint("bench", i)), events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
		if err != nil {
			return err
		}
		in := events.LeadResolved{Phone: sim.HelenaPhone, Persons: []events.ResolvedPerson{{CPF: cpf, Role: events.RolePhone, PhoneSource: "diretrix"}}}
		env, err := events.New(events.TypeResolved, &recv, in)
		if err != nil {
			return err
		}
		return e.Handle(ctx, env, in)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := run(b); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "persons/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4) // handlers mostly wait on Postgres and JetStream
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := run(b); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "persons/s")
	})
	if n := r.sims.WorkAPI.TotalPaidCalls(); n != 0 {
		b.Fatalf("%d paid calls with every payload stored", n)
	}
}
