package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

type options struct {
	backlog, live, concurrency, workers int
	analyzeEvery                        time.Duration
	product, floor                      bool
	rounds                              int
	steadyRate                          float64
	steadyLeads                         int
	steadyEdgeAlone                     bool // the stages stopped during the steady load: ingest on its own
	coldEdgeAlone                       bool // the stages stopped during the cold start: ingest on its own
	edgeOnly                            bool // the stages stopped from the cold start on, and only phase 1 runs: per-lead costs are the edge's per webhook
	cold, warm, warmFresh, warmIdle     int
	simLatency                          time.Duration
	serviceEnv                          []string // extra KEY=VALUE for every product service
}

// idleWait is how long the target sits idle after start-up before the first
// webhook, and before each -warm-idle one.
const idleWait = 5 * time.Second

// result is one target's measurements in one round.
type result struct {
	kind  string
	leads int // leads posted in all, cold start included
	procs []*service

	acks, acksP99, drain, live float64 // throughput phases
	steady                     *steadyResult

	cold []time.Duration // the first webhooks after start-up, one at a time
	warm []time.Duration // the next ones, one at a time (the reference)
	// freshP50: p50 of the ones after those, each on a new TCP connection
	// (what the first webhook pays beyond a warm server: the new connection).
	freshP50 time.Duration
	// idle: the last ones, each after the target sat idle as long as before
	// the first (and on a new connection): what is left of the first
	// webhook's time once the code paths are warm.
	idle []time.Duration
	// coldLeads: the first leads' webhook received → message posted (from
	// the trace; 0 = no message; empty for the floor).
	coldLeads []time.Duration

	// Costs over the target's whole life (start-up, cold start and load).
	pg          pgStats       // pg_stat_database deltas, the bench's own transactions removed
	streamMsgs  uint64        // JetStream messages stored
	simCalls    int64         // HTTP calls the simulators answered
	paid        int64         // paid Work API answers
	uniqueCPFs  int           // distinct people behind the leads
	messages    int           // C2S messages posted
	withPersons int           // leads whose phone or email leads to somebody
	runRows     int           // floor: pipeline.lead_runs rows written
	pgCPU       time.Duration // CPU of the Postgres backends serving the target (their whole life)
	pgCPUByApp  map[string]time.Duration
	// pgTrips and pgStmts are the product's Postgres round trips and
	// statements, client side (leadflow_postgres_*_total of every process,
	// read just before it stops); -1 when not measured (the floor).
	pgTrips, pgStmts float64
	pgPings          float64       // liveness pings on idle connections (store.PingAfterIdle), not in pgTrips
	benchCPU         time.Duration // CPU of this process (NATS server, simulators, load) from the first webhook on
	load             [2]string     // machine load average when the target started and when it ended
	check            error         // floor: messages or rows do not match the lead count
	// phases: the CPU of each load phase alone (drain, live, steady), without
	// the start-up, the cold start and the idle waits that the whole-life
	// costs above spread over every lead.
	phases []phaseCPU
}

// cpuMark is the CPU used so far by the target's processes, the Postgres
// backends serving it and this process.
type cpuMark struct{ procs, pg, bench time.Duration }

// phaseCPU is the CPU one load phase used, and its leads.
type phaseCPU struct {
	name  string
	leads int
	cpu   cpuMark
}

// markCPU reads every counter a phase needs at its start and its end.
func markCPU(ctx context.Context, e *env, t *target, pg *backendCPU) cpuMark {
	e.sampleBackends(ctx, pg)
	var m cpuMark
	for _, s := range t.procs {
		if c, ok := testinfra.ProcCPU(s.cmd.Process.Pid); ok {
			m.procs += c
		}
	}
	m.pg, m.bench = pg.total(), testinfra.SelfCPU()
	return m
}

// perLead is the phase's whole CPU per lead, ms.
func (c phaseCPU) perLead() float64 {
	return ms(c.cpu.procs+c.cpu.pg+c.cpu.bench) / float64(c.leads)
}

// phasesOf is r's phases (none for nil).
func phasesOf(r *result) []phaseCPU {
	if r == nil {
		return nil
	}
	return r.phases
}

// phase returns a phaseCPU from from to to.
func phase(name string, leads int, from, to cpuMark) phaseCPU {
	return phaseCPU{name: name, leads: leads, cpu: cpuMark{to.procs - from.procs, to.pg - from.pg, to.bench - from.bench}}
}

type steadyResult struct {
	n            int
	achieved     float64 // webhooks sent per second
	answer       []time.Duration
	e2e          []time.Duration // webhook sent → message posted in the C2S simulator
	overhead     []time.Duration // e2e minus the simulators' configured latency × calls per lead
	missing      int             // leads that should have a message and have none
	callsPerLead float64
	allDone      time.Duration // first webhook sent → every run over
	stages       *stageTimes   // the product's trace of the steady leads (nil for the floor)
}

func run(ctx context.Context, o options) error {
	bins, err := os.MkdirTemp("", "leadflow-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bins)
	fmt.Fprintln(os.Stderr, "building binaries...")
	var pkgs []string
	if o.product {
		for _, s := range stack.Services {
			pkgs = append(pkgs, "services/"+s)
		}
	}
	if o.floor {
		pkgs = append(pkgs, "cmd/bench/floor")
	}
	for _, p := range pkgs {
		if _, err := testinfra.BuildService(bins, p); err != nil {
			return err
		}
	}
	var all [][2]*result
	var checks error
	for round := 1; round <= o.rounds; round++ {
		var pr, fr *result
		if o.product {
			if pr, err = measure(ctx, o, "product", bins); err != nil {
				return err
			}
		}
		if o.floor {
			if fr, err = measure(ctx, o, "floor", bins); err != nil {
				return err
			}
			checks = errors.Join(checks, fr.check)
		}
		report(o, round, pr, fr)
		all = append(all, [2]*result{pr, fr})
	}
	summary(o, all)
	return checks
}

// measure starts one target on a fresh environment, measures it and stops it.
func measure(ctx context.Context, o options, kind, bins string) (*result, error) {
	n := o.cold + o.warm + o.warmFresh + o.warmIdle + o.backlog + o.live
	if o.steadyRate > 0 {
		n = o.cold + o.warm + o.warmFresh + o.warmIdle + o.steadyLeads
	}
	dir, err := os.MkdirTemp("", "leadflow-bench-"+kind+"-")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s: starting (%d leads)...\n", kind, n)
	e, err := newEnv(ctx, o, dir, n)
	if err != nil {
		return nil, err
	}
	defer e.close()
	start := startProduct
	if kind == "floor" {
		start = startFloor
	}
	t, err := start(e, o, bins)
	if err != nil {
		return nil, err
	}
	defer t.stop()
	if err := t.waitReady(); err != nil {
		return nil, err
	}
	// The set-up leaves about 100 MB of dirty pages (the binaries just
	// built, the new database's files). The kernel writes them back 30 s
	// later (vm.dirty_expire_centisecs), in the middle of the load, and
	// every commit's WAL flush then waits behind them: write them now.
	syncStart := time.Now()
	syscall.Sync()
	fmt.Fprintf(os.Stderr, "%s: sync took %s\n", kind, time.Since(syncStart).Round(time.Millisecond))
	r := &result{kind: kind, leads: n, procs: t.procs}
	r.load[0] = loadAvg()
	var stopOnce sync.Once
	stop := e.analyzer(o.analyzeEvery)
	stopAnalyze := func() { stopOnce.Do(stop) }
	defer stopAnalyze()

	// Idle: everything up and provisioned, nothing to do.
	time.Sleep(idleWait)
	for _, s := range t.procs {
		s.idle = rss(s.cmd.Process.Pid)
		s.idleAnon = rssAnon(s.cmd.Process.Pid)
	}

	// Cold start: the first webhooks the edge ever answers, one at a time,
	// then as many again as the warm reference.
	fmt.Fprintf(os.Stderr, "%s: cold start, %d + %d + %d + %d webhooks one at a time...\n", kind, o.cold, o.warm, o.warmFresh, o.warmIdle)
	cw := o.cold + o.warm
	off := cw + o.warmFresh + o.warmIdle
	cpu0 := testinfra.SelfCPU()
	if o.coldEdgeAlone || o.edgeOnly {
		if err := t.pause(); err != nil {
			return nil, err
		}
	}
	times, err := oneByOne(t.base, e.bodies[:cw], e.bodies[cw:cw+o.warmFresh], e.bodies[cw+o.warmFresh:off], idleWait)
	if o.coldEdgeAlone && !o.edgeOnly {
		// The first leads' end to end then includes the pause: only the
		// webhook answers are the measurement.
		if rerr := t.resume(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return nil, err
	}
	r.cold, r.warm = times[:o.cold], times[o.cold:cw]
	r.freshP50, r.idle = pct(times[cw:cw+o.warmFresh], 50), times[cw+o.warmFresh:]
	if o.edgeOnly {
		// The stages stay stopped: nothing will finish.
	} else if err := t.waitDone(ctx, off, 2*time.Minute); err != nil {
		return nil, err
	}
	if !o.coldEdgeAlone && !o.edgeOnly {
		if r.coldLeads, err = firstLeads(ctx, e, o.cold); err != nil {
			return nil, err
		}
	}

	var pg backendCPU
	e.sampleBackends(ctx, &pg)
	sample := sampler(ctx, e, t.procs, &pg)
	mark := func() cpuMark { return markCPU(ctx, e, t, &pg) }
	if o.steadyRate > 0 {
		r.steady, err = runSteady(ctx, o, e, t, off, mark, r)
	} else {
		err = runPhases(ctx, o, e, t, off, mark, r)
	}
	sample()
	if err != nil {
		return nil, err
	}
	stopAnalyze()
	e.sampleBackends(ctx, &pg)
	r.pgCPU, r.pgCPUByApp, r.benchCPU, r.load[1] = pg.total(), pg.byApp(), testinfra.SelfCPU()-cpu0, loadAvg()
	r.pgTrips, r.pgStmts, r.pgPings = t.postgresWork(o.edgeOnly)
	if o.edgeOnly && t.discard != nil {
		t.discard()
	}
	t.stop()

	// Costs: everything the target did since its database was migrated.
	if r.streamMsgs, err = e.streamMsgs(ctx, t.stream); err != nil {
		return nil, err
	}
	r.simCalls, r.paid, r.messages = e.simRequests(), e.sims.WorkAPI.TotalPaidCalls(), e.sims.C2S.MessageCount()
	unique, nPersons := map[string]bool{}, 0
	for _, l := range e.leads {
		persons := e.sims.Pop.ExpectedPersons(l.ID)
		if len(persons) > 0 {
			r.withPersons++
		}
		nPersons += len(persons)
		for _, cpf := range persons {
			unique[cpf] = true
		}
	}
	r.uniqueCPFs = len(unique)
	if kind == "floor" && !o.edgeOnly {
		if r.runRows, err = e.count(ctx, `SELECT count(*) FROM pipeline.lead_runs`); err != nil {
			return nil, err
		}
		// The floor writes a fresh entity per person per lead.
		entities, err := e.count(ctx, `SELECT count(*) FROM core.entities`)
		if err != nil {
			return nil, err
		}
		if r.messages != n || r.runRows != n || entities != nPersons {
			r.check = fmt.Errorf("floor check failed: %d C2S messages, %d lead_runs rows for %d leads; %d entities for %d persons",
				r.messages, r.runRows, n, entities, nPersons)
		}
	}
	e.pool.Close()
	after, err := e.stats(ctx)
	if err != nil {
		return nil, err
	}
	b := e.before
	r.pg = pgStats{commits: after.commits - b.commits - e.own.Load(), rollbacks: after.rollbacks - b.rollbacks,
		inserted: after.inserted - b.inserted, updated: after.updated - b.updated, deleted: after.deleted - b.deleted}
	return r, nil
}

// runPhases is the throughput measurement: the edge alone, the drain of that
// backlog, then leads posted while everything runs.
func runPhases(ctx context.Context, o options, e *env, t *target, off int, mark func() cpuMark, r *result) error {
	// Phase 1: the edge alone (the stages are stopped), acked webhooks/s.
	fmt.Fprintf(os.Stderr, "%s phase 1: %d webhooks to the edge alone...\n", t.kind, o.backlog)
	if !o.edgeOnly { // -edge-only: stopped since the cold start
		if err := t.pause(); err != nil {
			return err
		}
	}
	var err error
	r.acks, r.acksP99, err = blast(t.base, e.bodies[off:off+o.backlog], o.concurrency)
	if o.edgeOnly {
		return err
	}
	if rerr := t.resume(); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}

	// Phase 2: the stages drain the backlog.
	fmt.Fprintf(os.Stderr, "%s phase 2: draining the backlog...\n", t.kind)
	start := time.Now()
	m0 := mark()
	if err := t.waitDone(ctx, off+o.backlog, 10*time.Minute); err != nil {
		return err
	}
	r.drain = float64(o.backlog) / time.Since(start).Seconds()
	m1 := mark()
	if o.backlog > 0 {
		r.phases = append(r.phases, phase("drain", o.backlog, m0, m1))
	}

	// Phase 3: live end to end.
	fmt.Fprintf(os.Stderr, "%s phase 3: %d leads end to end...\n", t.kind, o.live)
	start = time.Now()
	if _, _, err := blast(t.base, e.bodies[off+o.backlog:], o.concurrency); err != nil {
		return err
	}
	if err := t.waitDone(ctx, off+o.backlog+o.live, 10*time.Minute); err != nil {
		return err
	}
	r.live = float64(o.live) / time.Since(start).Seconds()
	if o.live > 0 {
		r.phases = append(r.phases, phase("live", o.live, m1, mark()))
	}
	return nil
}

// runSteady posts the remaining leads at a fixed rate and measures latencies.
func runSteady(ctx context.Context, o options, e *env, t *target, off int, mark func() cpuMark, r *result) (*steadyResult, error) {
	fmt.Fprintf(os.Stderr, "%s steady: %d webhooks at %g/s (edge alone: %v)...\n", t.kind, o.steadyLeads, o.steadyRate, o.steadyEdgeAlone)
	calls := e.simRequests()
	if o.steadyEdgeAlone {
		if err := t.pause(); err != nil {
			return nil, err
		}
	}
	m0 := mark()
	sent, answer, achieved, err := steadyLoad(t.base, e.bodies[off:], o.steadyRate)
	if o.steadyEdgeAlone {
		// End to end then includes the wait for the stages: only the
		// webhook answers are the measurement.
		if rerr := t.resume(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return nil, err
	}
	if err := t.waitDone(ctx, off+o.steadyLeads, 10*time.Minute); err != nil {
		return nil, err
	}
	r.phases = append(r.phases, phase("steady", o.steadyLeads, m0, mark()))
	s := &steadyResult{n: o.steadyLeads, achieved: achieved, answer: answer, allDone: time.Since(sent[0])}
	if t.kind == "product" && !o.steadyEdgeAlone {
		if s.stages, err = readStageTimes(ctx, e, sent[0]); err != nil {
			return nil, err
		}
	}
	s.callsPerLead = float64(e.simRequests()-calls) / float64(s.n)
	upstream := time.Duration(float64(o.simLatency) * s.callsPerLead)
	for i, l := range e.leads[off:] {
		// Only leads the product posts on: the floor also posts on leads
		// whose identifiers lead nowhere, the product does not.
		if len(e.sims.Pop.ExpectedPersons(l.ID)) == 0 {
			continue
		}
		msgs := e.sims.C2S.Messages(l.ID)
		if len(msgs) == 0 {
			s.missing++
			continue
		}
		d := msgs[0].At.Sub(sent[i])
		s.e2e = append(s.e2e, d)
		s.overhead = append(s.overhead, d-upstream)
	}
	return s, nil
}

// procCPU is the CPU the target's processes used over their whole life.
func (r *result) procCPU() time.Duration {
	var cpu time.Duration
	for _, s := range r.procs {
		cpu += s.cpu
	}
	return cpu
}

// report prints one round: product, floor and product ÷ floor.
func report(o options, round int, p, f *result) {
	fmt.Println()
	if o.rounds > 1 {
		fmt.Printf("Round %d of %d\n\n", round, o.rounds)
	}
	fmt.Println("| metric | product | floor | product ÷ floor | target |")
	fmt.Println("|---|---|---|---|---|")
	row := func(metric string, v func(*result) string, ratio, target string) {
		cell := func(r *result) string {
			if r == nil {
				return "-"
			}
			return v(r)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", metric, cell(p), cell(f), ratio, target)
	}
	ratio := func(v func(*result) float64) string {
		if p == nil || f == nil || v(f) == 0 {
			return ""
		}
		return fmt.Sprintf("%.0f %%", 100*v(p)/v(f))
	}
	if o.steadyRate == 0 {
		row(fmt.Sprintf("acked webhooks/s (edge alone, %d clients)", o.concurrency),
			func(r *result) string { return fmt.Sprintf("%.0f (p99 %.1f ms)", r.acks, r.acksP99) },
			ratio(func(r *result) float64 { return r.acks }), "≥ 5,000")
	}
	if o.edgeOnly {
		fmt.Println("| -edge-only: the stages stayed stopped, so every per-lead row below is the edge's cost per webhook | | | | |")
	} else if o.steadyRate == 0 {
		row(fmt.Sprintf("pipeline drain, leads/s (%d-lead backlog)", o.backlog),
			func(r *result) string { return fmt.Sprintf("%.0f", r.drain) },
			ratio(func(r *result) float64 { return r.drain }), "≥ 500; ≥ 70 % of floor")
		row(fmt.Sprintf("live end to end, leads/s (%d leads)", o.live),
			func(r *result) string { return fmt.Sprintf("%.0f", r.live) },
			ratio(func(r *result) float64 { return r.live }), "≥ 500; ≥ 70 % of floor")
	} else {
		three := func(ds []time.Duration) string {
			return fmt.Sprintf("%.1f / %.1f / %.1f", ms(pct(ds, 50)), ms(pct(ds, 90)), ms(pct(ds, 99)))
		}
		alone := ""
		if o.steadyEdgeAlone {
			alone = ", the edge alone: end to end includes the stages' start"
		}
		row(fmt.Sprintf("steady: webhooks sent per second (asked %g/s, %d leads%s)", o.steadyRate, o.steadyLeads, alone),
			func(r *result) string { return fmt.Sprintf("%.1f", r.steady.achieved) }, "", "")
		row("webhook answer p50 / p90 / p99, ms", func(r *result) string { return three(r.steady.answer) }, "", "p99 ≤ 10 ms at 1,000/s, the edge alone")
		row("end to end p50 / p90 / p99, ms (webhook sent → message in C2S)",
			func(r *result) string { return three(r.steady.e2e) }, "", "")
		what := "zero-latency simulators: the whole end to end"
		if o.simLatency > 0 {
			what = fmt.Sprintf("end to end − %s × simulator calls per lead", o.simLatency)
		}
		row("overhead p50 / p90 / p99, ms ("+what+")",
			func(r *result) string { return three(r.steady.overhead) }, "", "p99 ≤ 25 ms at 100/s")
		row("simulator calls per lead during the steady load",
			func(r *result) string { return fmt.Sprintf("%.2f", r.steady.callsPerLead) }, "", "")
		row("leads timed end to end / leads without their message",
			func(r *result) string { return fmt.Sprintf("%d / %d", len(r.steady.e2e), r.steady.missing) }, "", "0 without")
		if p != nil && p.steady.stages != nil {
			st := p.steady.stages
			fmt.Printf("| per stage p50 / p99, ms (the product's trace): resolve / enrich / notify | %.1f / %.1f, %.1f / %.1f, %.1f / %.1f | | | |\n",
				ms(pct(st.resolve, 50)), ms(pct(st.resolve, 99)), ms(pct(st.enrich, 50)), ms(pct(st.enrich, 99)), ms(pct(st.notify, 50)), ms(pct(st.notify, 99)))
			fmt.Printf("| the slowest 1 %% of leads (trace): leads / distinct seconds they were received in / most in one second (at +s) | %d / %d / %d (+%.0f s) | | | evenly spread: about one per second |\n",
				st.slowest, st.slowSeconds, st.busiest, st.busiestAt.Seconds())
			var at []string
			for _, a := range st.analyzed {
				at = append(at, fmt.Sprintf("+%.1f s (took %.0f ms)", a.at.Seconds(), ms(a.took)))
			}
			if len(at) == 0 {
				at = []string{"none"}
			}
			fmt.Printf("| the bench's ANALYZE ended at (from the start of the load), and its wall time | %s | | | |\n", strings.Join(at, ", "))
		}
		row("every run over, s after the first webhook",
			func(r *result) string { return fmt.Sprintf("%.1f", r.steady.allDone.Seconds()) }, "", "")
	}
	row(fmt.Sprintf("cold start: first %d webhooks, one at a time, ms", o.cold), func(r *result) string {
		var s []string
		for _, d := range r.cold {
			s = append(s, fmt.Sprintf("%.1f", ms(d)))
		}
		return strings.Join(s, " ")
	}, "", "")
	// The same statistics of both sets: the first webhooks answer as fast
	// as the rest when their spread is the warm ones' spread.
	spread := func(ds []time.Duration) string {
		return fmt.Sprintf("%.2f / %.1f / %.1f", ms(pct(ds, 50)), ms(pct(ds, 90)), ms(slices.Max(append([]time.Duration{0}, ds...))))
	}
	row(fmt.Sprintf("cold start: p50 / p90 / max of the first %d, ms", o.cold), func(r *result) string { return spread(r.cold) }, "", "")
	row(fmt.Sprintf("warm: p50 / p90 / max of the next %d, one at a time, ms", o.warm),
		func(r *result) string { return spread(r.warm) }, "", "")
	if o.warmFresh > 0 {
		row(fmt.Sprintf("warm, each on a new connection: p50 of the next %d, ms", o.warmFresh),
			func(r *result) string { return fmt.Sprintf("%.2f", ms(r.freshP50)) }, "", "")
	}
	if o.warmIdle > 0 {
		row(fmt.Sprintf("warm, each after %v idle and on a new connection, like the first: the next %d, ms", idleWait, o.warmIdle), func(r *result) string {
			var s []string
			for _, d := range r.idle {
				s = append(s, fmt.Sprintf("%.1f", ms(d)))
			}
			return strings.Join(s, " ")
		}, "", "")
	}
	row(fmt.Sprintf("cold start: first %d leads, webhook received → message posted, ms (- = no message)", o.cold), func(r *result) string {
		if len(r.coldLeads) == 0 {
			return "-"
		}
		var s []string
		for _, d := range r.coldLeads {
			if d == 0 {
				s = append(s, "-")
				continue
			}
			s = append(s, fmt.Sprintf("%.0f", ms(d)))
		}
		return strings.Join(s, " ")
	}, "", "")
	per := func(v float64, r *result) string { return fmt.Sprintf("%.2f", v/float64(r.leads)) }
	row("Postgres transactions (xact_commit) per lead", func(r *result) string { return per(float64(r.pg.commits), r) }, "", "")
	row("Postgres round trips / statements per lead (client side), and pings in all", func(r *result) string {
		if r.pgTrips < 0 {
			return "-"
		}
		return per(r.pgTrips, r) + " / " + per(r.pgStmts, r) + fmt.Sprintf(" (%.0f pings)", r.pgPings)
	}, "", "")
	row("Postgres rows inserted / updated / deleted per lead", func(r *result) string {
		return per(float64(r.pg.inserted), r) + " / " + per(float64(r.pg.updated), r) + " / " + per(float64(r.pg.deleted), r)
	}, "", "")
	row("CPU per lead, ms: the target's processes / its Postgres backends / the bench process (NATS, simulators, load)", func(r *result) string {
		return per(ms(r.procCPU()), r) + " / " + per(ms(r.pgCPU), r) + " / " + per(ms(r.benchCPU), r)
	}, "", "")
	// On a CPU-bound machine the throughput ratio is about the inverse of
	// this one: 70 % of the floor allows the floor's CPU per lead ÷ 0.7.
	leadCPU := func(r *result) float64 { return ms(r.procCPU()+r.pgCPU+r.benchCPU) / float64(r.leads) }
	allowed := ""
	if f != nil && f.leads > 0 {
		allowed = fmt.Sprintf("≤ %.2f (the floor's ÷ 0.7)", leadCPU(f)/0.7)
	}
	cpuRatio := ""
	if p != nil && f != nil && p.leads > 0 && f.leads > 0 && leadCPU(p) > 0 {
		cpuRatio = fmt.Sprintf("%.0f %% (floor ÷ product)", 100*leadCPU(f)/leadCPU(p))
	}
	row("CPU per lead, ms: the whole lead (the three above)", func(r *result) string {
		return fmt.Sprintf("%.2f", leadCPU(r))
	}, cpuRatio, allowed)
	// The same for each load phase alone: what a lead costs while leads
	// flow, without the start-up and idle time spread over the leads above.
	src := p
	if src == nil || len(src.phases) == 0 {
		src = f
	}
	for i := range phasesOf(src) {
		name, leads := src.phases[i].name, src.phases[i].leads
		get := func(r *result) (phaseCPU, bool) {
			if r == nil || i >= len(r.phases) {
				return phaseCPU{}, false
			}
			return r.phases[i], true
		}
		ratio := ""
		if pp, ok := get(p); ok && pp.perLead() > 0 {
			if fp, ok := get(f); ok {
				ratio = fmt.Sprintf("%.0f %% (floor ÷ product)", 100*fp.perLead()/pp.perLead())
			}
		}
		row(fmt.Sprintf("CPU per lead in the %s phase alone (%d leads), ms: processes / Postgres backends / bench process = the whole lead", name, leads), func(r *result) string {
			c, ok := get(r)
			if !ok {
				return "-"
			}
			n := float64(c.leads)
			return fmt.Sprintf("%.2f / %.2f / %.2f = %.2f", ms(c.cpu.procs)/n, ms(c.cpu.pg)/n, ms(c.cpu.bench)/n, c.perLead())
		}, ratio, "")
	}
	if p != nil && len(p.procs) > 1 {
		var parts, names []string
		for _, s := range p.procs {
			names = append(names, s.name)
			parts = append(parts, per(ms(s.cpu), p))
		}
		fmt.Printf("| CPU per lead, ms, by process (%s) | %s | | | |\n", strings.Join(names, " / "), strings.Join(parts, " / "))
		// The same services' Postgres backends (their application_name),
		// the rate budgets' pools apart.
		parts, names = parts[:0], names[:0]
		for _, s := range p.procs {
			for _, app := range []string{s.name, s.name + "-budgets"} {
				names = append(names, app)
				parts = append(parts, per(ms(p.pgCPUByApp[app]), p))
			}
		}
		var other time.Duration
		for app, d := range p.pgCPUByApp {
			if !slices.Contains(names, app) {
				other += d
			}
		}
		names, parts = append(names, "other"), append(parts, per(ms(other), p))
		fmt.Printf("| Postgres backends' CPU per lead, ms, by application (%s) | %s | | | |\n", strings.Join(names, " / "), strings.Join(parts, " / "))
	}
	row("JetStream messages stored per lead", func(r *result) string { return per(float64(r.streamMsgs), r) }, "", "")
	row("simulator HTTP calls per lead", func(r *result) string { return per(float64(r.simCalls), r) }, "", "")
	row("paid Work API calls / unique CPFs", func(r *result) string { return fmt.Sprintf("%d / %d", r.paid, r.uniqueCPFs) }, "", "product: equal")
	row("C2S messages posted / leads / leads with a person", func(r *result) string {
		return fmt.Sprintf("%d / %d / %d", r.messages, r.leads, r.withPersons)
	}, "", "product: = leads with a person; floor: = leads")
	for _, r := range []*result{p, f} {
		if r == nil {
			continue
		}
		for _, s := range r.procs {
			v := fmt.Sprintf("%.1f / %.1f MB (idle anonymous %.1f MB)", float64(s.idle)/1024, float64(s.peak.Load())/1024, float64(s.idleAnon)/1024)
			pc, fc, target := v, "", "≤ 20 / ≤ 64 MB"
			if r.kind == "floor" {
				pc, fc, target = "", v, ""
			}
			fmt.Printf("| %s RSS idle / peak under load | %s | %s |  | %s |\n", s.name, pc, fc, target)
		}
	}
	row("machine load average (1 min) at start / end", func(r *result) string { return r.load[0] + " / " + r.load[1] }, "", "2 cores")
	if f != nil && f.check != nil {
		fmt.Printf("\n**%v**\n", f.check)
	}
}

// summary prints the ratios of every round and their median.
func summary(o options, all [][2]*result) {
	if !o.product || !o.floor {
		return
	}
	type col struct {
		name string
		v    func(*result) float64
	}
	var cols []col
	switch {
	case o.edgeOnly:
		cols = []col{{"webhooks", func(r *result) float64 { return r.acks }}}
	case o.steadyRate == 0:
		cols = []col{{"drain", func(r *result) float64 { return r.drain }}, {"live", func(r *result) float64 { return r.live }},
			{"webhooks", func(r *result) float64 { return r.acks }}}
	default:
		cols = []col{{"end to end p50", func(r *result) float64 { return ms(pct(r.steady.e2e, 50)) }},
			{"overhead p99", func(r *result) float64 { return ms(pct(r.steady.overhead, 99)) }}}
	}
	fmt.Println()
	head, line := "| round |", "|---|"
	for _, c := range cols {
		head += fmt.Sprintf(" product %s | floor %s | product ÷ floor |", c.name, c.name)
		line += "---|---|---|"
	}
	fmt.Println(head)
	fmt.Println(line)
	ratios := make([][]float64, len(cols))
	for i, rr := range all {
		fmt.Printf("| %d |", i+1)
		for j, c := range cols {
			p, f := c.v(rr[0]), c.v(rr[1])
			q := 0.0
			if f != 0 {
				q = 100 * p / f
			}
			ratios[j] = append(ratios[j], q)
			fmt.Printf(" %.1f | %.1f | %.0f %% |", p, f, q)
		}
		fmt.Println()
	}
	fmt.Print("| median |")
	for j := range cols {
		s := slices.Clone(ratios[j])
		slices.Sort(s)
		m := s[len(s)/2]
		if len(s)%2 == 0 {
			m = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		fmt.Printf(" | | %.0f %% |", m)
	}
	fmt.Println()
}
