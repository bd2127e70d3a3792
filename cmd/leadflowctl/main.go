// Command leadflowctl operates the leadflow pipeline: replay, dead letters,
// lead traces, stream status and the C2S webhook subscription. Run
// `leadflowctl --help`; the commands live in pkg/ops/cli over pkg/ops.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/leadflow/leadflow/cmd/leadflowctl/cli"
)

func main() {
	// Ctrl-C stops a replay between events; its summary is still printed
	// and recorded, and --replay-id resumes it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], cli.StdIO())
	stop()
	os.Exit(code)
}
