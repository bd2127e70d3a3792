package testinfra

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BackendCPU returns a function reading the CPU time, in microseconds, that
// the backend behind a one-connection pool has used (Linux /proc; the
// database runs on this machine in benchmarks). Benchmarks report it per
// operation: it moves far less with the machine's load than wall time.
func BackendCPU(t TB, one *pgxpool.Pool) func() int64 {
	t.Helper()
	var pid int
	if err := one.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatalf("the backend's pid: %v", err)
	}
	return func() int64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("the backend's CPU time: %v", err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th, in clock ticks (100 per second on Linux).
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return (utime + stime) * 10_000
	}
}
