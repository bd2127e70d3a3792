// Command bench measures the product end to end on this machine: the four
// service binaries as separate processes, a real Postgres database, an
// embedded NATS JetStream server and zero-latency simulators. It reports
// acked webhooks/s (ingest alone), pipeline throughput draining a backlog,
// live end-to-end leads/s, RSS per service idle and under load, and paid
// Work API calls against unique CPFs. Results go to docs/BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/leadflow/leadflow/pkg/buildinfo"
)

func main() {
	var o options
	flag.IntVar(&o.backlog, "backlog", 5000, "leads posted to ingest alone, then drained by the pipeline")
	flag.IntVar(&o.live, "live", 5000, "leads posted while the whole pipeline runs")
	flag.IntVar(&o.concurrency, "concurrency", 64, "concurrent HTTP clients")
	flag.IntVar(&o.workers, "workers", 64, "handlers per consumer in each worker service")
	flag.DurationVar(&o.analyzeEvery, "analyze-every", 30*time.Second, "run ANALYZE this often, as autovacuum would (0 = never)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.String("bench"))
		return
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
