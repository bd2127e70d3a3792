package coredb

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/domain/person"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

const (
	fullCPF   = "31860457207"
	sparseCPF = "74291506325"
)

// fixedNow pins the financial year so expectations do not depend on the date.
var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// newCoreDB returns a pool on a fresh database holding the core schema.
func newCoreDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if _, err := pool.Exec(context.Background(), string(contracts.Read("db/schema.sql"))); err != nil {
		t.Fatalf("apply schema: %v", err)
	}
	return pool
}

func newTestWriter(pool *pgxpool.Pool) *Writer {
	w := NewWriter(pool, decimal.RequireFromString("1.9"))
	w.now = func() time.Time { return fixedNow }
	return w
}

func fixture(t testing.TB, name string) *person.Person {
	t.Helper()
	p, err := person.Parse(contracts.Read(name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustExec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func queryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}

// rowsJSON runs a query returning one jsonb column and decodes every row with
// UseNumber, so numerics keep their exact text and scale ("0.30").
func rowsJSON(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []any {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	defer rows.Close()
	out := []any{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeJSON(t, raw))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeJSON(t testing.TB, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func assertJSON(t *testing.T, what string, got []any, want string) {
	t.Helper()
	w := decodeJSON(t, []byte(want))
	if !reflect.DeepEqual(got, w) {
		g, _ := json.MarshalIndent(got, "", "  ")
		e, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("%s:\n got %s\nwant %s", what, g, e)
	}
}

// Per-table views without ids and timestamps; timestamps that must be set
// are reported as booleans. Contacts are listed in insertion order.
const (
	viewEntities = `SELECT to_jsonb(x) - 'entity_id' - 'created_at' - 'updated_at'
		|| jsonb_build_object('enriched_at', x.enriched_at IS NOT NULL)
		FROM core.entities x WHERE national_id = $1 ORDER BY created_at, entity_id`
	viewProfiles = `SELECT to_jsonb(p) - 'entity_id' - 'created_at' - 'updated_at'
		FROM core.entity_profiles p JOIN core.entities e USING (entity_id) WHERE e.national_id = $1`
	viewFinancials = `SELECT to_jsonb(f) - 'id' - 'entity_id' - 'created_at' - 'updated_at'
		FROM core.entity_financials f JOIN core.entities e USING (entity_id) WHERE e.national_id = $1
		ORDER BY f.financial_year, f.created_at`
	viewEmails = `SELECT to_jsonb(x) - 'id' - 'entity_id' - 'created_at' - 'updated_at'
		FROM core.entity_emails x JOIN core.entities e USING (entity_id) WHERE e.national_id = $1
		ORDER BY x.created_at, x.email`
	viewPhones = `SELECT to_jsonb(x) - 'id' - 'entity_id' - 'created_at' - 'updated_at'
		FROM core.entity_phones x JOIN core.entities e USING (entity_id) WHERE e.national_id = $1
		ORDER BY x.created_at, x.phone`
	viewAddresses = `SELECT (to_jsonb(a) - 'id' - 'created_at' - 'updated_at')
		|| (to_jsonb(x) - 'id' - 'entity_id' - 'address_id' - 'created_at' - 'updated_at')
		FROM core.entity_addresses x JOIN core.addresses a ON a.id = x.address_id
		JOIN core.entities e USING (entity_id) WHERE e.national_id = $1
		ORDER BY x.created_at, a.street`
)

// digestCore renders every core row except timestamp columns, sorted, so two
// digests are equal exactly when no row was added, removed or changed.
func digestCore(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(r, E'\n' ORDER BY r), '') FROM (
		SELECT 'entities ' || (to_jsonb(x) - 'created_at' - 'updated_at' - 'enriched_at')::text AS r FROM core.entities x
		UNION ALL SELECT 'profiles ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.entity_profiles x
		UNION ALL SELECT 'financials ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.entity_financials x
		UNION ALL SELECT 'emails ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.entity_emails x
		UNION ALL SELECT 'phones ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.entity_phones x
		UNION ALL SELECT 'addresses ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.addresses x
		UNION ALL SELECT 'links ' || (to_jsonb(x) - 'created_at' - 'updated_at')::text FROM core.entity_addresses x
	) s`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawEconomic returns an object of the fixture's DadosEconomicos as JSON text.
func rawEconomic(t testing.TB, name, key string) string {
	t.Helper()
	var doc struct {
		DadosEconomicos map[string]json.RawMessage
	}
	if err := json.Unmarshal(contracts.Read(name), &doc); err != nil {
		t.Fatal(err)
	}
	raw, ok := doc.DadosEconomicos[key]
	if !ok {
		return "null"
	}
	return string(raw)
}
