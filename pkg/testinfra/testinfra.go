// Package testinfra gives tests real infrastructure: a fresh Postgres
// database per test package (dropped afterwards) and embedded NATS JetStream
// servers on free ports. Nothing here is a mock.
package testinfra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/nats-io/nats.go/jetstream"
)

// AdminURL is the server used to create and drop test databases. It honours
// TEST_DATABASE_URL so CI or a developer can point elsewhere.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// TB is the part of testing.TB the helpers need; *testing.M users pass nil
// and call the returned cleanup themselves.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// NewDatabase creates an empty database with a random name and returns its
// URL. The database is dropped when the test (or cleanup) ends.
func NewDatabase(t TB) string {
	t.Helper()
	dbURL, drop, err := CreateDatabase(context.Background(), "test")
	if err != nil {
		t.Fatalf("testinfra: %v", err)
	}
	t.Cleanup(drop)
	return dbURL
}

// CreateDatabase is NewDatabase for callers without a testing.TB (TestMain,
// benchmarks' setup, cmd tools). prefix becomes part of the database name.
func CreateDatabase(ctx context.Context, prefix string) (dbURL string, drop func(), err error) {
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s (is PostgreSQL running?): %w", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("lf_%s_%s", prefix, randomHex(6))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, _ := url.Parse(AdminURL())
	u.Path = "/" + name
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// NewPool opens a pool on dbURL, closed at cleanup.
func NewPool(t TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("testinfra: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// StartNATS starts an embedded JetStream server, shut down at cleanup.
func StartNATS(t TB) *embedded.NATS {
	t.Helper()
	dir, err := os.MkdirTemp("", "lf-nats-")
	if err != nil {
		t.Fatalf("testinfra: %v", err)
	}
	n, err := embedded.Start(dir, -1)
	if err != nil {
		t.Fatalf("testinfra: %v", err)
	}
	t.Cleanup(func() { n.Shutdown(); _ = os.RemoveAll(dir) })
	return n
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	return u.Redacted()
}

var _ testing.TB = (*testing.T)(nil)

// SubjectMessages returns the payloads stored on one subject of a stream,
// oldest first, read with an ordered consumer (the stream is not changed).
func SubjectMessages(t TB, js jetstream.JetStream, stream, subject string) [][]byte {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("testinfra: stream: %v", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("testinfra: stream info: %v", err)
	}
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("testinfra: consumer: %v", err)
	}
	batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("testinfra: fetch: %v", err)
	}
	out := make([][]byte, 0, n)
	for m := range batch.Messages() {
		out = append(out, m.Data())
	}
	if len(out) != n {
		t.Fatalf("testinfra: read %d of %d messages on %s", len(out), n, subject)
	}
	return out
}

// BuildService compiles ./services/<name> (or any package path relative to
// the repository root) into dir and returns the binary's path, for tests and
// benchmarks that run real processes.
func BuildService(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, "./"+pkg)
	cmd.Dir = RepoRoot()
	// Built as deploy/Dockerfile builds them (static, no cgo), so that the
	// bench and e2e measure and run what ships.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}
