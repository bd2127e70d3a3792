// Package cli is leadflowctl's command tree (spf13/cobra) over pkg/ops. It
// lives outside package main so tests drive the real commands in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/buildinfo"
	"github.com/leadflow/leadflow/pkg/ops"
	"github.com/leadflow/leadflow/pkg/store"
)

// IO is where a command reads and writes; Getenv reads the environment.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	// TTY says whether Err is a terminal (the progress bar is drawn only
	// then); nil = detect on os.Stderr.
	TTY func() bool
}

// StdIO is the process's own streams and environment.
func StdIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, TTY: func() bool {
		fi, err := os.Stderr.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}}
}

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the action failed, or part of it did
	ExitUsage   = 2 // bad flags or arguments
)

// usageError marks errors of the operator's making.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Execute runs leadflowctl with args and returns the exit code.
func Execute(ctx context.Context, args []string, io IO) int {
	a := &app{io: io}
	defer a.close()
	root := a.root()
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(io.Err, "error:", err)
	var ue usageError
	if errors.As(err, &ue) || failure.Is(err, failure.KindPermanent) || strings.Contains(err.Error(), "unknown flag") ||
		strings.Contains(err.Error(), "unknown command") || strings.Contains(err.Error(), "arg(s)") {
		return ExitUsage
	}
	return ExitFailure
}

// app holds the global flags and the lazily opened connections.
type app struct {
	io      IO
	natsURL string
	dbURL   string
	timeout time.Duration

	nc   *nats.Conn
	pool *pgxpool.Pool
}

// root builds the command tree.
func (a *app) root() *cobra.Command {
	io := a.io
	root := &cobra.Command{
		Use:   "leadflowctl",
		Short: "Operate the leadflow pipeline: replay, dead letters, traces, status, uncertain deliveries, C2S webhooks",
		Long: `leadflowctl operates a running leadflow pipeline.

It talks to the same NATS JetStream stream (LEADS) and Postgres database as the
services. Connection settings come from --nats/--db or the NATS_URL and
DATABASE_URL (alias DB_URL) environment variables; NATS_CREDS, NATS_NKEY_SEED
and NATS_TLS_CA/CERT/KEY as for the services. Personal data is masked in
every output unless a command says otherwise.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Get().Version,
	}
	root.SetVersionTemplate(buildinfo.String("leadflowctl") + "\n")
	// Defaults come from the environment at run time, not as flag defaults:
	// --help must never print a URL that may hold a password.
	root.PersistentFlags().StringVar(&a.natsURL, "nats", "", "NATS server URL(s), comma-separated (default: env NATS_URL)")
	root.PersistentFlags().StringVar(&a.dbURL, "db", "", "Postgres URL (default: env DATABASE_URL or DB_URL)")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		a.natsURL = firstNonEmpty(a.natsURL, io.Getenv("NATS_URL"))
		a.dbURL = firstNonEmpty(a.dbURL, io.Getenv("DATABASE_URL"), io.Getenv("DB_URL"))
	}
	root.PersistentFlags().DurationVar(&a.timeout, "connect-timeout", 10*time.Second, "how long to wait for NATS and Postgres")
	root.AddCommand(a.replayCmd(), a.dlqCmd(), a.traceCmd(), a.statusCmd(), a.uncertainCmd(), a.c2sCmd())
	return root
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// ops connects what the command needs.
func (a *app) ops(ctx context.Context, needNATS, needDB bool) (*ops.Ops, error) {
	o := &ops.Ops{}
	if needNATS {
		if a.natsURL == "" {
			return nil, usageError{errors.New("NATS URL missing: pass --nats or set NATS_URL")}
		}
		if a.nc == nil {
			// The services' authentication and TLS files (NATS_CREDS, NATS_NKEY_SEED, NATS_TLS_*).
			auth, err := messaging.NATSAuthFromEnv(a.io.Getenv).Options()
			if err != nil {
				return nil, usageError{err}
			}
			nc, err := nats.Connect(a.natsURL, append([]nats.Option{nats.Name("leadflowctl"), nats.Timeout(a.timeout)}, auth...)...)
			if err != nil {
				return nil, fmt.Errorf("connect NATS: %w", err)
			}
			a.nc = nc
		}
		js, err := jetstream.New(a.nc)
		if err != nil {
			return nil, err
		}
		o.JS = js
	}
	if needDB {
		if a.dbURL == "" {
			return nil, usageError{errors.New("database URL missing: pass --db or set DATABASE_URL")}
		}
		if a.pool == nil {
			cctx, cancel := context.WithTimeout(ctx, a.timeout)
			defer cancel()
			pool, err := store.Open(cctx, a.dbURL, 4, false)
			if err != nil {
				// pgx errors may echo the URL: never print the password.
				return nil, errors.New("connect Postgres: unreachable or refused (check --db / DATABASE_URL)")
			}
			a.pool = pool
		}
		o.Pool = a.pool
	}
	return o, nil
}

func (a *app) close() {
	if a.nc != nil {
		a.nc.Close()
		a.nc = nil
	}
	if a.pool != nil {
		a.pool.Close()
		a.pool = nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// age prints a duration for humans.
func age(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}
