package store

import (
	"context"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/pkg/testinfra"
)

// A GenericPlans session plans a prepared statement without its values from
// the first execution on (the plan names $1); a default session plans the
// first executions with the values in hand (the plan names 42).
func TestGenericPlansSessionPlansWithoutTheValues(t *testing.T) {
	ctx := context.Background()
	db := testinfra.NewDatabase(t)
	for _, c := range []struct {
		session Session
		want    string
	}{{Session{GenericPlans: true}, "$1"}, {Session{}, "42"}} {
		pool, err := OpenWith(ctx, db, 1, c.session)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Conn().Prepare(ctx, "q", `SELECT relname FROM pg_class WHERE relpages = $1`); err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE q(42)`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan.String(), "relpages = "+c.want) {
			t.Errorf("session %+v: the first plan\n%s\ndoes not compare relpages with %s", c.session, plan.String(), c.want)
		}
		conn.Release()
		pool.Close()
	}
}

// A session carries its service's application_name, unless the URL names
// one (an operator's choice wins).
func TestSessionApplicationName(t *testing.T) {
	ctx := context.Background()
	db := testinfra.NewDatabase(t)
	sep := "?"
	if strings.Contains(db, "?") {
		sep = "&"
	}
	for _, c := range []struct {
		url, app, want string
	}{
		{db, "leadflow-resolver", "leadflow-resolver"},
		{db + sep + "application_name=ops", "leadflow-resolver", "ops"},
	} {
		pool, err := OpenWith(ctx, c.url, 1, Session{AppName: c.app})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := pool.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		pool.Close()
		if got != c.want {
			t.Errorf("application_name = %q, want %q", got, c.want)
		}
	}
}
