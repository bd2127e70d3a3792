// Command bench measures the product end to end on this machine: the four
// service binaries as separate processes, a real Postgres database, an
// embedded NATS JetStream server and zero-latency simulators. It reports
// acked webhooks/s (ingest alone), pipeline throughput draining a backlog,
// live end-to-end leads/s, RSS per service idle and under load, paid Work API
// calls against unique CPFs, cold-start webhook times and per-lead costs
// (Postgres transactions and rows, JetStream messages, upstream calls).
//
// In the same run, back to back and with the same leads, it measures the
// floor (./floor): the plainest single-process program doing the same work
// per lead, against the same kind of database, NATS server and simulators.
// It prints product ÷ floor. -steady-rate switches from the throughput phases
// to an open-loop fixed rate with latency percentiles. Results go to
// docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/leadflow/leadflow/pkg/buildinfo"
)

func main() {
	var o options
	flag.IntVar(&o.backlog, "backlog", 5000, "leads posted to ingest alone, then drained by the pipeline")
	flag.IntVar(&o.live, "live", 5000, "leads posted while the whole pipeline runs")
	flag.IntVar(&o.concurrency, "concurrency", 64, "concurrent HTTP clients")
	flag.IntVar(&o.workers, "workers", 64, "handlers per consumer in each worker service (and per floor stage)")
	flag.DurationVar(&o.analyzeEvery, "analyze-every", 30*time.Second, "run ANALYZE this often, as autovacuum would (0 = never)")
	flag.BoolVar(&o.product, "product", true, "measure the product")
	flag.BoolVar(&o.floor, "floor", true, "measure the floor (the plainest single-process pipeline) with the same leads")
	flag.IntVar(&o.rounds, "rounds", 1, "alternate product and floor this many times; prints each ratio and the median")
	flag.Float64Var(&o.steadyRate, "steady-rate", 0, "post webhooks at this fixed rate per second (open loop) instead of the throughput phases")
	flag.IntVar(&o.steadyLeads, "steady-leads", 3000, "leads posted in steady mode")
	flag.BoolVar(&o.steadyEdgeAlone, "steady-edge-alone", false, "steady mode with the stages stopped while posting: the webhook edge (ingest) on its own")
	flag.IntVar(&o.cold, "cold", 20, "cold start: webhooks timed one at a time right after start-up")
	flag.BoolVar(&o.coldEdgeAlone, "cold-edge-alone", false, "the stages stopped during the cold start: the first webhook answers of the edge (ingest) on its own, without the pipeline's CPU beside it")
	flag.BoolVar(&o.edgeOnly, "edge-only", false, "only the webhook edge: the stages stay stopped from the cold start on, only the acked-webhooks phase runs (-live is ignored), and the per-lead costs are the edge's per webhook")
	flag.IntVar(&o.warmFresh, "warm-fresh", 20, "cold start: webhooks timed one at a time after the warm ones, each on a new TCP connection (the first webhook's connection is new too)")
	flag.IntVar(&o.warmIdle, "warm-idle", 3, "cold start: webhooks timed after the fresh ones, each after the target sat idle as long as before the first webhook (5 s), on a new connection: the first webhook's conditions with warm code")
	flag.IntVar(&o.warm, "warm", 100, "cold start: webhooks timed one at a time after the cold ones (their p50 is the warm reference)")
	flag.DurationVar(&o.simLatency, "sim-latency", 0, "latency every simulator adds to every call (subtracted, times calls per lead, from end to end as upstream time)")
	flag.Func("service-env", "KEY=VALUE added to every product service's environment (repeatable), e.g. GOMAXPROCS=1", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.serviceEnv = append(o.serviceEnv, v)
		return nil
	})
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.String("bench"))
		return
	}
	if o.edgeOnly && o.steadyRate > 0 {
		fmt.Fprintln(os.Stderr, "bench: -edge-only measures the acked-webhooks phase; for a steady rate on the edge use -steady-edge-alone")
		os.Exit(2)
	}
	if o.edgeOnly {
		o.live = 0
	}
	if !o.product && !o.floor {
		fmt.Fprintln(os.Stderr, "bench: nothing to measure (-product=false -floor=false)")
		os.Exit(2)
	}
	if o.rounds < 1 || o.cold < 0 || o.warm < 1 || o.warmFresh < 0 || o.warmIdle < 0 || o.steadyRate < 0 || (o.steadyRate > 0 && o.steadyLeads < 1) {
		fmt.Fprintln(os.Stderr, "bench: -rounds and -warm must be ≥ 1, -cold and -steady-rate ≥ 0, -steady-leads ≥ 1")
		os.Exit(2)
	}
	if d := os.Getenv("BENCH_PROFILE_DIR"); d != "" {
		// The bench process too: its NATS server, simulators and load.
		stop, err := profileSelf(filepath.Join(d, "bench.pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer stop()
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1) // without the profile: it is of a failed run
	}
}

// profileSelf writes this process's CPU profile to path until stop.
func profileSelf(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
