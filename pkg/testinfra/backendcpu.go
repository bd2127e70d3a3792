package testinfra

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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
		cpu, ok := ProcCPU(pid)
		if !ok {
			t.Fatalf("the backend's CPU time: no /proc/%d/stat", pid)
		}
		return cpu.Microseconds()
	}
}

// ProcCPU is the user + system CPU a process on this machine has used, from
// /proc/<pid>/stat; false when the process is gone or unreadable.
func ProcCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (USER_HZ, 100 per second on Linux).
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100), true
}

// SelfCPU is the user + system CPU this process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
