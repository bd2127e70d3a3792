package store

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/leadflow/leadflow/pkg/testinfra"
)

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	ctx := context.Background()
	url := testinfra.NewDatabase(t)
	pool, err := Open(ctx, url, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- Migrate(ctx, pool) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"core.entities", "core.entity_profiles", "core.entity_financials", "core.entity_emails",
		"core.entity_phones", "core.addresses", "core.entity_addresses", "pipeline.lead_runs", "pipeline.notifications",
		"pipeline.workapi_payloads", "pipeline.webhook_receipts", "pipeline.lead_stages"} {
		var ok bool
		if err := pool.QueryRow(ctx, "select to_regclass($1) is not null", table).Scan(&ok); err != nil || !ok {
			t.Errorf("%s missing (%v)", table, err)
		}
	}
	var versions int
	if err := pool.QueryRow(ctx, "select count(*) from pipeline_goose_version where version_id > 0").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if want := len(files) + 1; versions != want { // + the Go migration of core.*
		t.Fatalf("applied %d migrations, want %d (each once)", versions, want)
	}
}

// Production databases already hold core.* with rows: migrating must keep them.
func TestMigrateKeepsExistingCoreRows(t *testing.T) {
	ctx := context.Background()
	url := testinfra.NewDatabase(t)
	pool, err := Open(ctx, url, 4, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE SCHEMA core;
		CREATE TYPE core.entity_type_enum AS ENUM ('person','company');
		CREATE TABLE core.entities (entity_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), entity_type core.entity_type_enum NOT NULL,
		  national_id text, name text, canonical_name text, is_enriched boolean DEFAULT false, enriched_at timestamptz,
		  data_source text, metadata jsonb DEFAULT '{}', is_active boolean DEFAULT true, confidence text,
		  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz DEFAULT now());
		INSERT INTO core.entities (entity_type, national_id, name) VALUES ('person', '31860457207', 'EXISTING');`)
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := pool.QueryRow(ctx, "select name from core.entities where national_id='31860457207'").Scan(&name); err != nil || name != "EXISTING" {
		t.Fatalf("existing row lost: %q %v", name, err)
	}
}

// The pipeline's raw JSON columns (no query compares them) get no
// statistics, so ANALYZE skips them; the columns queries filter on keep theirs.
func TestAnalyzeSkipsThePipelinesRawJSON(t *testing.T) {
	ctx := context.Background()
	pool, err := Open(ctx, testinfra.NewDatabase(t), 2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO pipeline.lead_stages (event_id, run_id, lead_id, stage, outcome, detail)
			SELECT 'e' || g, 'r' || g, 'l' || (g % 50), 'resolved', 'ok', jsonb_build_object('n', g) FROM generate_series(1, 500) g`,
		`INSERT INTO pipeline.workapi_payloads (cpf, payload, fetched_at)
			SELECT lpad(g::text, 11, '0'), jsonb_build_object('n', g), now() FROM generate_series(1, 500) g`,
		`ANALYZE pipeline.lead_stages, pipeline.workapi_payloads`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT c.table_schema || '.' || c.table_name || '.' || c.column_name, c.data_type = 'jsonb',
			EXISTS (SELECT 1 FROM pg_stats s WHERE s.schemaname = c.table_schema AND s.tablename = c.table_name AND s.attname = c.column_name)
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE c.table_schema = 'pipeline' AND t.table_type = 'BASE TABLE'
			AND (c.data_type = 'jsonb' OR c.table_name IN ('lead_stages', 'workapi_payloads'))`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var col string
		var jsonb, stats bool
		if err := rows.Scan(&col, &jsonb, &stats); err != nil {
			t.Fatal(err)
		}
		seen++
		raw := col == "pipeline.lead_stages.detail" || col == "pipeline.workapi_payloads.payload" ||
			col == "pipeline.run_outcomes.event" || col == "pipeline.webhook_receipts.payload" || col == "pipeline.replays.selector"
		if isKey := col == "pipeline.lead_stages.lead_id" || col == "pipeline.workapi_payloads.cpf"; isKey && !stats {
			t.Errorf("%s has no statistics after ANALYZE", col)
		}
		if raw && stats {
			t.Errorf("ANALYZE kept statistics of the raw JSON %s", col)
		}
		if jsonb && !raw {
			t.Errorf("%s: a new jsonb column of the pipeline; if no query compares it, give it no statistics too", col)
		}
	}
	if seen < 10 {
		t.Fatalf("looked at %d columns", seen)
	}
}
