package store

import (
	"context"
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
	files, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(files); versions != want { // the core schema (Go) and each SQL file
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
