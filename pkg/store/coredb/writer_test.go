package coredb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/person"
)

// write writes one person, through the insert-only path when fresh.
func write(ctx context.Context, w *Writer, p *person.Person, leadID string, fresh bool) (Result, error) {
	rs, err := w.WritePersons(ctx, []*person.Person{p}, []bool{fresh}, leadID, nil)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// Both paths write a new person's rows exactly as DB.md asks: the merge
// (sqlPerson) and the insert-only statement for fresh persons
// (sqlNewPerson).
func TestWritePayloadRows(t *testing.T) {
	t.Parallel()
	fullMeta := fmt.Sprintf(`{"poder_aquisitivo": %s, "mosaic": %s}`,
		rawEconomic(t, "workapi/cpf.json", "poderAquisitivo"), rawEconomic(t, "workapi/cpf.json", "serasaMosaic"))
	sparseMeta := fmt.Sprintf(`{"poder_aquisitivo": %s, "mosaic": null}`,
		rawEconomic(t, "workapi/cpf_sparse.json", "poderAquisitivo"))

	tests := []struct {
		name, file, cpf, lead string
		want                  Result
		entities, profiles    string
		financials, emails    string
		phones, addresses     string
	}{{
		name: "full", file: "workapi/cpf.json", cpf: fullCPF, lead: "lead-1",
		want: Result{Created: true, EmailsAdded: 4, PhonesAdded: 4, AddressesAdded: 3},
		entities: `[{"entity_type": "person", "national_id": "31860457207", "name": "HELENA MARQUES DUARTE",
			"canonical_name": "HELENA MARQUES DUARTE", "is_enriched": true, "enriched_at": true, "data_source": "api",
			"metadata": {"c2s_lead_id": "lead-1"}, "is_active": true, "confidence": null}]`,
		profiles: `[{"sex": "F", "birth_date": "1986-03-14", "death_date": null, "nationality": "BRASILEIRA",
			"marital_status": "CASADO(A)", "education_level": "ENSINO SUPERIOR COMPLETO", "occupation": null,
			"metadata": {"mother_name": "ROSANA MARQUES DUARTE", "cor": "PARDA", "municipio_nascimento": "CAMPINAS"}}]`,
		financials: `[{"financial_year": 2025, "financial_month": null, "reported_income": 16150.95, "credit_score": 845,
			"risk_score": 0.30, "source": "api", "confidence": "high", "metadata": ` + fullMeta + `}]`,
		emails: `[
			{"email": "helena.duarte@example.com", "email_type": "personal", "is_primary": true, "is_verified": true,
			 "metadata": {"prioridade": "MUITO ALTA", "qualidade": "OTIMO", "email_pessoal": "SIM", "blacklist": "NÃO"}},
			{"email": "h.marques.duarte@example.com", "email_type": "personal", "is_primary": false, "is_verified": true,
			 "metadata": {"prioridade": "ALTA", "qualidade": "BOM", "email_pessoal": "SIM", "blacklist": "NÃO"}},
			{"email": "helena.md@example.com", "email_type": "personal", "is_primary": false, "is_verified": false,
			 "metadata": {"prioridade": null, "qualidade": "POTENCIALMENTE BOM", "email_pessoal": "NAO", "blacklist": "NÃO"}},
			{"email": "hmduarte.trabalho@example.com", "email_type": "personal", "is_primary": false, "is_verified": true,
			 "metadata": {"prioridade": "BAIXA", "qualidade": "BOM", "email_pessoal": "NAO", "blacklist": "NÃO"}}]`,
		phones: `[
			{"phone": "11987650123", "phone_type": "mobile", "is_primary": true, "is_whatsapp": true, "is_verified": null,
			 "carrier": "VIVO", "metadata": {"status": "ATIVO"}},
			{"phone": "1133021234", "phone_type": "landline", "is_primary": false, "is_whatsapp": false, "is_verified": null,
			 "carrier": "CLARO", "metadata": {"status": "ATIVO"}},
			{"phone": "11976540987", "phone_type": "mobile", "is_primary": false, "is_whatsapp": false, "is_verified": null,
			 "carrier": "TIM", "metadata": {"status": "ATIVO"}},
			{"phone": "1140041234", "phone_type": "landline", "is_primary": false, "is_whatsapp": false, "is_verified": null,
			 "carrier": "OI", "metadata": {"status": "NO"}}]`,
		addresses: `[
			{"street_type": "R", "street": "DAS PALMEIRAS FICTICIAS", "number": "245", "complement": "AP 52",
			 "neighborhood": "JARDIM EXEMPLO", "city": "SAO PAULO", "state": "SP", "zip_code": "01000900",
			 "address_type": "residential", "is_primary": true, "is_current": true, "data_source": "api",
			 "confidence_score": null, "verified": false, "metadata": {}},
			{"street_type": "AV", "street": "DOS TESTES", "number": null, "complement": null,
			 "neighborhood": "VILA MODELO", "city": "CAMPINAS", "state": "SP", "zip_code": "13000900",
			 "address_type": "residential", "is_primary": false, "is_current": true, "data_source": "api",
			 "confidence_score": null, "verified": false, "metadata": {}},
			{"street_type": "R", "street": "SEM SAIDA DE EXEMPLO", "number": "12", "complement": null,
			 "neighborhood": "CENTRO", "city": "SANTOS", "state": "SP", "zip_code": "11000900",
			 "address_type": "residential", "is_primary": false, "is_current": true, "data_source": "api",
			 "confidence_score": null, "verified": false, "metadata": {}}]`,
	}, {
		name: "sparse", file: "workapi/cpf_sparse.json", cpf: sparseCPF, lead: "",
		want: Result{Created: true, PhonesAdded: 1, AddressesAdded: 1},
		entities: `[{"entity_type": "person", "national_id": "74291506325", "name": "OTAVIO PRADO LINS",
			"canonical_name": "OTAVIO PRADO LINS", "is_enriched": true, "enriched_at": true, "data_source": "api",
			"metadata": {}, "is_active": true, "confidence": null}]`,
		profiles: `[{"sex": "M", "birth_date": "1979-09-02", "death_date": null, "nationality": "BRASILEIRA",
			"marital_status": "SOLTEIRO(A)", "education_level": null, "occupation": null,
			"metadata": {"father_name": "JOAQUIM PRADO LINS"}}]`,
		financials: `[{"financial_year": 2025, "financial_month": null, "reported_income": 2345.66, "credit_score": null,
			"risk_score": null, "source": "api", "confidence": "high", "metadata": ` + sparseMeta + `}]`,
		emails: `[]`,
		phones: `[{"phone": "15991230987", "phone_type": "mobile", "is_primary": true, "is_whatsapp": true,
			"is_verified": null, "carrier": "VIVO", "metadata": {"status": "ATIVO"}}]`,
		addresses: `[{"street_type": "R", "street": "DOS EXEMPLOS", "number": "1000", "complement": "CASA 2",
			"neighborhood": null, "city": "SOROCABA", "state": "SP", "zip_code": "18000900",
			"address_type": "residential", "is_primary": true, "is_current": true, "data_source": "api",
			"confidence_score": null, "verified": false, "metadata": {}}]`,
	}}
	for _, tc := range tests {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fresh=%t", tc.name, fresh), func(t *testing.T) {
				t.Parallel()
				pool := newCoreDB(t)
				res, err := write(context.Background(), newTestWriter(pool), fixture(t, tc.file), tc.lead, fresh)
				if err != nil {
					t.Fatal(err)
				}
				if res.EntityID == "" {
					t.Fatal("no entity id")
				}
				tc.want.EntityID = res.EntityID
				if res != tc.want {
					t.Errorf("result = %+v, want %+v", res, tc.want)
				}
				assertJSON(t, "entities", rowsJSON(t, pool, viewEntities, tc.cpf), tc.entities)
				assertJSON(t, "profiles", rowsJSON(t, pool, viewProfiles, tc.cpf), tc.profiles)
				assertJSON(t, "financials", rowsJSON(t, pool, viewFinancials, tc.cpf), tc.financials)
				assertJSON(t, "emails", rowsJSON(t, pool, viewEmails, tc.cpf), tc.emails)
				assertJSON(t, "phones", rowsJSON(t, pool, viewPhones, tc.cpf), tc.phones)
				assertJSON(t, "addresses", rowsJSON(t, pool, viewAddresses, tc.cpf), tc.addresses)
				// Nothing else was written, and everything hangs off the one entity.
				if n := queryInt(t, pool, `SELECT (SELECT count(*) FROM core.entities)
				+ (SELECT count(*) FROM core.addresses)`); n != 1+tc.want.AddressesAdded {
					t.Errorf("entities+addresses = %d", n)
				}
				if n := queryInt(t, pool, `SELECT (SELECT count(*) FROM core.entity_profiles WHERE entity_id <> $1)
				+ (SELECT count(*) FROM core.entity_financials WHERE entity_id <> $1)
				+ (SELECT count(*) FROM core.entity_emails WHERE entity_id <> $1)
				+ (SELECT count(*) FROM core.entity_phones WHERE entity_id <> $1)
				+ (SELECT count(*) FROM core.entity_addresses WHERE entity_id <> $1)`, res.EntityID); n != 0 {
					t.Errorf("%d rows belong to another entity", n)
				}
			})
		}
	}
}

func TestWriteTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			pool := newCoreDB(t)
			w := newTestWriter(pool)
			ctx := context.Background()
			first, err := w.WritePerson(ctx, fixture(t, file), "lead-1")
			if err != nil {
				t.Fatal(err)
			}
			before := digestCore(t, pool)
			// Row versions: an unchanged profile or financial year is not
			// rewritten at all, not even its updated_at.
			const versions = `SELECT coalesce(string_agg(xmin::text, ',' ORDER BY entity_id), '') FROM (
				SELECT xmin, entity_id FROM core.entity_profiles UNION ALL
				SELECT xmin, entity_id FROM core.entity_financials) v`
			var rowsBefore string
			if err := pool.QueryRow(ctx, versions).Scan(&rowsBefore); err != nil {
				t.Fatal(err)
			}
			// The second rewrite is marked fresh by mistake: the insert-only
			// statement finds the entity, and the merge changes nothing.
			for i := range 2 {
				again, err := write(ctx, w, fixture(t, file), "lead-1", i == 1)
				if err != nil {
					t.Fatal(err)
				}
				if want := (Result{EntityID: first.EntityID}); again != want {
					t.Errorf("rewrite %d: result = %+v, want %+v", i, again, want)
				}
				if after := digestCore(t, pool); after != before {
					t.Fatalf("rewrite %d changed rows:\nbefore %s\nafter  %s", i, before, after)
				}
				var rowsAfter string
				if err := pool.QueryRow(ctx, versions).Scan(&rowsAfter); err != nil {
					t.Fatal(err)
				}
				if rowsAfter != rowsBefore {
					t.Errorf("rewrite %d rewrote the unchanged profile or financials: versions %s, before %s", i, rowsAfter, rowsBefore)
				}
			}
		})
	}
}

// Existing entity and profile values survive; fills happen only where NULL or
// empty; profile metadata is merged existing || new (DB.md), so keys the
// payload does not carry survive while payload keys take the payload's value;
// financials are the one place where the latest data replaces old values.
func TestWriteKeepsExistingValues(t *testing.T) {
	t.Parallel()
	pool := newCoreDB(t)
	ctx := context.Background()
	var oldID, youngID string
	// A younger duplicate must be left alone: the oldest row wins. It is
	// inserted first so that physical order cannot pass for age order.
	if err := pool.QueryRow(ctx, `INSERT INTO core.entities (entity_type, national_id, name, created_at)
		VALUES ('person', $1, NULL, now() - interval '1 day') RETURNING entity_id::text`, fullCPF).Scan(&youngID); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `INSERT INTO core.entities (entity_type, national_id, name, canonical_name, data_source, metadata, created_at)
		VALUES ('person', $1, 'Helena M. Duarte', '', 'manual', '{"legacy": true, "c2s_lead_id": "old"}', now() - interval '2 days')
		RETURNING entity_id::text`, fullCPF).Scan(&oldID); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `INSERT INTO core.entity_profiles (entity_id, sex, nationality, metadata)
		VALUES ($1, 'M', 'PORTUGUESA', '{"legacy": "x", "cor": "BRANCA"}')`, oldID)
	mustExec(t, pool, `INSERT INTO core.entity_financials (entity_id, financial_year, reported_income, credit_score, risk_score, source, confidence)
		VALUES ($1, 2025, 1.00, 100, 0.90, 'manual', 'low')`, oldID)
	mustExec(t, pool, `INSERT INTO core.entity_financials (entity_id, financial_year, reported_income)
		VALUES ($1, 2024, 5.00)`, oldID)
	// Same address in another case/format and same phone: not added again.
	mustExec(t, pool, `INSERT INTO core.entity_emails (entity_id, email) VALUES ($1, 'HELENA.DUARTE@example.com')`, oldID)
	mustExec(t, pool, `INSERT INTO core.entity_phones (entity_id, phone) VALUES ($1, '1133021234')`, oldID)
	mustExec(t, pool, `WITH a AS (INSERT INTO core.addresses (street, number, zip_code) VALUES ('SEM SAIDA DE EXEMPLO', '12', '11000-900') RETURNING id)
		INSERT INTO core.entity_addresses (entity_id, address_id) SELECT $1, id FROM a`, oldID)
	// Same street but another number, same street and number but another zip:
	// different addresses, so the payload's are still added.
	mustExec(t, pool, `WITH a AS (INSERT INTO core.addresses (street, number, zip_code) VALUES
			('DAS PALMEIRAS FICTICIAS', '999', '01000900'), ('DOS TESTES', NULL, '99999999') RETURNING id)
		INSERT INTO core.entity_addresses (entity_id, address_id) SELECT $1, id FROM a`, oldID)

	// Marked fresh, as a just-bought payload would be: the insert-only
	// statement finds the entity another writer made, and the merge runs.
	res, err := write(ctx, newTestWriter(pool), fixture(t, "workapi/cpf.json"), "lead-2", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{EntityID: oldID, EmailsAdded: 3, PhonesAdded: 3, AddressesAdded: 2}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	assertJSON(t, "entities", rowsJSON(t, pool, viewEntities, fullCPF), `[
		{"entity_type": "person", "national_id": "31860457207", "name": "Helena M. Duarte",
		 "canonical_name": "HELENA MARQUES DUARTE", "is_enriched": true, "enriched_at": true, "data_source": "manual",
		 "metadata": {"legacy": true, "c2s_lead_id": "lead-2"}, "is_active": true, "confidence": null},
		{"entity_type": "person", "national_id": "31860457207", "name": null, "canonical_name": null,
		 "is_enriched": false, "enriched_at": false, "data_source": null, "metadata": {}, "is_active": true, "confidence": null}]`)
	assertJSON(t, "profiles", rowsJSON(t, pool, viewProfiles, fullCPF), `[{"sex": "M", "birth_date": "1986-03-14",
		"death_date": null, "nationality": "PORTUGUESA", "marital_status": "CASADO(A)",
		"education_level": "ENSINO SUPERIOR COMPLETO", "occupation": null,
		"metadata": {"legacy": "x", "cor": "PARDA", "mother_name": "ROSANA MARQUES DUARTE", "municipio_nascimento": "CAMPINAS"}}]`)
	fin := rowsJSON(t, pool, `SELECT jsonb_build_object('year', financial_year, 'income', reported_income,
		'score', credit_score, 'risk', risk_score, 'source', source, 'confidence', confidence)
		FROM core.entity_financials ORDER BY financial_year`)
	assertJSON(t, "financials", fin, `[
		{"year": 2024, "income": 5.00, "score": null, "risk": null, "source": null, "confidence": null},
		{"year": 2025, "income": 16150.95, "score": 845, "risk": 0.30, "source": "api", "confidence": "high"}]`)
	// The pre-existing contacts were neither duplicated nor made primary.
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entity_emails WHERE lower(email) = 'helena.duarte@example.com'`); n != 1 {
		t.Errorf("%d rows for an email that existed", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entity_emails WHERE is_primary`); n != 0 {
		t.Errorf("%d primary emails: the first entry existed already, so none is new and primary", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entity_phones WHERE is_primary AND phone = '11987650123'`); n != 1 {
		t.Error("the first phone was new and no primary existed: it must be primary")
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entity_addresses WHERE entity_id = $1`, youngID); n != 0 {
		t.Error("the younger duplicate was written to")
	}
}

func TestWriteExistingPrimaryContacts(t *testing.T) {
	t.Parallel()
	pool := newCoreDB(t)
	ctx := context.Background()
	var id string
	if err := pool.QueryRow(ctx, `INSERT INTO core.entities (entity_type, national_id, name)
		VALUES ('person', $1, 'HELENA') RETURNING entity_id::text`, fullCPF).Scan(&id); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `INSERT INTO core.entity_emails (entity_id, email, is_primary) VALUES ($1, 'old@example.com', true)`, id)
	mustExec(t, pool, `INSERT INTO core.entity_phones (entity_id, phone, is_primary) VALUES ($1, '11900000000', true)`, id)
	mustExec(t, pool, `WITH a AS (INSERT INTO core.addresses (street) VALUES ('OLD') RETURNING id)
		INSERT INTO core.entity_addresses (entity_id, address_id, is_primary) SELECT $1, id, true FROM a`, id)

	res, err := newTestWriter(pool).WritePerson(ctx, fixture(t, "workapi/cpf.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.EmailsAdded != 4 || res.PhonesAdded != 4 || res.AddressesAdded != 3 {
		t.Fatalf("result = %+v", res)
	}
	for _, tc := range []struct{ table, col, old string }{
		{"core.entity_emails", "email", "old@example.com"},
		{"core.entity_phones", "phone", "11900000000"},
		{"core.entity_addresses x JOIN core.addresses a ON a.id = x.address_id", "street", "OLD"},
	} {
		var primaries []string
		rows, err := pool.Query(ctx, `SELECT `+tc.col+` FROM `+tc.table+` WHERE is_primary`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			primaries = append(primaries, s)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if len(primaries) != 1 || primaries[0] != tc.old {
			t.Errorf("%s primaries = %v, want only the pre-existing %s", tc.table, primaries, tc.old)
		}
	}
}

func TestWriteFinancialsLatestWins(t *testing.T) {
	t.Parallel()
	pool := newCoreDB(t)
	ctx := context.Background()
	w := newTestWriter(pool)
	if _, err := w.WritePerson(ctx, fixture(t, "workapi/cpf.json"), ""); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := pool.QueryRow(ctx, `SELECT id::text FROM core.entity_financials`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	p := fixture(t, "workapi/cpf.json")
	p.Economic.Renda = "100,00"
	p.Economic.Score = person.Score{CSBAFaixaRisco: "MUITO ALTO"}
	p.Economic.SerasaMosaicRaw = nil
	if _, err := w.WritePerson(ctx, p, ""); err != nil {
		t.Fatal(err)
	}
	got := rowsJSON(t, pool, `SELECT jsonb_build_object('id', id::text, 'income', reported_income, 'score', credit_score,
		'risk', risk_score, 'mosaic', metadata->'mosaic') FROM core.entity_financials`)
	assertJSON(t, "financials", got, `[{"id": "`+id+`", "income": 190.00, "score": null, "risk": 0.90, "mosaic": null}]`)

	// Neither income nor score: the row is left as it is.
	p.Economic = person.Economic{Renda: "n/a"}
	if _, err := w.WritePerson(ctx, p, ""); err != nil {
		t.Fatal(err)
	}
	assertJSON(t, "financials untouched", rowsJSON(t, pool, `SELECT jsonb_build_object('id', id::text, 'income', reported_income,
		'score', credit_score, 'risk', risk_score, 'mosaic', metadata->'mosaic') FROM core.entity_financials`),
		`[{"id": "`+id+`", "income": 190.00, "score": null, "risk": 0.90, "mosaic": null}]`)
}

func TestWriteConcurrentSameCPF(t *testing.T) {
	t.Parallel()
	pool := newCoreDB(t)
	w := newTestWriter(pool)
	const n = 20
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			// Half of them take the insert-only path: all but the first
			// writer fall back to the merge.
			results[i], errs[i] = write(context.Background(), w, fixture(t, "workapi/cpf.json"), "lead-1", i%2 == 0)
		})
	}
	close(start)
	wg.Wait()
	created := 0
	var total Result
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if results[i].EntityID != results[0].EntityID {
			t.Errorf("writer %d wrote entity %s, writer 0 %s", i, results[i].EntityID, results[0].EntityID)
		}
		if results[i].Created {
			created++
		}
		total.EmailsAdded += results[i].EmailsAdded
		total.PhonesAdded += results[i].PhonesAdded
		total.AddressesAdded += results[i].AddressesAdded
	}
	if created != 1 || total.EmailsAdded != 4 || total.PhonesAdded != 4 || total.AddressesAdded != 3 {
		t.Errorf("created %d times, added %+v", created, total)
	}
	for sql, want := range map[string]int{
		`SELECT count(*) FROM core.entities`:                                                               1,
		`SELECT count(*) FROM core.entity_profiles`:                                                        1,
		`SELECT count(*) FROM core.entity_financials`:                                                      1,
		`SELECT count(DISTINCT email) FROM core.entity_emails`:                                             4,
		`SELECT count(*) FROM core.entity_emails`:                                                          4,
		`SELECT count(*) FROM core.entity_phones`:                                                          4,
		`SELECT count(*) FROM core.addresses`:                                                              3,
		`SELECT count(*) FROM core.entity_addresses`:                                                       3,
		`SELECT count(*) FROM core.entity_emails WHERE is_primary`:                                         1,
		`SELECT count(*) FROM core.entity_phones WHERE is_primary`:                                         1,
		`SELECT count(*) FROM core.entity_addresses WHERE is_primary`:                                      1,
		`SELECT count(*) FROM core.entity_emails WHERE is_primary AND email = 'helena.duarte@example.com'`: 1,
	} {
		if got := queryInt(t, pool, sql); got != want {
			t.Errorf("%s = %d, want %d", sql, got, want)
		}
	}
}

func TestWriteRejectsInvalidCPF(t *testing.T) {
	t.Parallel()
	pool := newCoreDB(t)
	w := newTestWriter(pool)
	valid := fixture(t, "workapi/cpf.json")
	withCPF := func(cpf person.CPF) *person.Person {
		p := *valid
		p.Basic.CPF = cpf
		return &p
	}
	for name, p := range map[string]*person.Person{
		"nil person":         nil,
		"missing":            withCPF(""),
		"blank":              withCPF("   "),
		"wrong check digits": withCPF("31860457208"),
		"repeated digit":     withCPF("11111111111"),
		"too short":          withCPF("3186045720"),
		"too long":           withCPF("318604572070"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := w.WritePerson(context.Background(), p, "lead-1")
			if !failure.Is(err, failure.KindPermanent) || !errors.Is(err, ErrInvalidCPF) {
				t.Fatalf("err = %v, want a permanent ErrInvalidCPF", err)
			}
		})
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entities`); n != 0 {
		t.Errorf("%d entities written for invalid CPFs", n)
	}
	// A formatted CPF is accepted and stored as digits.
	if _, err := w.WritePerson(context.Background(), withCPF("318.604.572-07"), ""); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entities WHERE national_id = $1`, fullCPF); n != 1 {
		t.Errorf("formatted CPF: %d entities stored as digits", n)
	}
}

// A failure in the last statement must leave nothing behind (one
// transaction), and the error must be classified without echoing data.
func TestWriteIsAtomic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sqlstate string
		kind           failure.Kind
	}{
		{"data exception is permanent", "22023", failure.KindPermanent},
		{"other errors are transient", "40001", failure.KindTransient},
	} {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fresh=%t", tc.name, fresh), func(t *testing.T) {
				t.Parallel()
				pool := newCoreDB(t)
				mustExec(t, pool, `CREATE FUNCTION core.fail_link() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'boom %', NEW.entity_id USING ERRCODE = '`+tc.sqlstate+`'; END $$`)
				mustExec(t, pool, `CREATE TRIGGER fail_link BEFORE INSERT ON core.entity_addresses
				FOR EACH ROW EXECUTE FUNCTION core.fail_link()`)
				_, err := write(context.Background(), newTestWriter(pool), fixture(t, "workapi/cpf.json"), "", fresh)
				if err == nil {
					t.Fatal("write succeeded despite the failing trigger")
				}
				if got := failure.KindOf(err); got != tc.kind {
					t.Errorf("kind = %v, want %v (%v)", got, tc.kind, err)
				}
				if strings.Contains(err.Error(), "boom") {
					t.Errorf("error text leaks the server message: %v", err)
				}
				if !strings.Contains(err.Error(), tc.sqlstate) {
					t.Errorf("error text lacks the SQLSTATE: %v", err)
				}
				if n := queryInt(t, pool, `SELECT (SELECT count(*) FROM core.entities) + (SELECT count(*) FROM core.entity_profiles)
				+ (SELECT count(*) FROM core.entity_financials) + (SELECT count(*) FROM core.entity_emails)
				+ (SELECT count(*) FROM core.entity_phones) + (SELECT count(*) FROM core.addresses)`); n != 0 {
					t.Errorf("%d rows survived a failed write", n)
				}
				// The pool stays usable: the aborted transaction was rolled back.
				if n := queryInt(t, pool, `SELECT 1`); n != 1 {
					t.Fatal("pool unusable")
				}
			})
		}
	}
}

// The batch must behave the same whatever exec mode the product's pool uses
// (e.g. the simple protocol behind a transaction-pooling PgBouncer).
func TestWriteExecModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			ref := newCoreDB(t)
			cfg := ref.Config()
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			w := newTestWriter(pool)
			// Every write is marked fresh: two insert-only writes, then one
			// that finds its entity (a NULL id) and falls back to the merge.
			for _, file := range []string{"workapi/cpf.json", "workapi/cpf_sparse.json", "workapi/cpf.json"} {
				if _, err := write(context.Background(), w, fixture(t, file), "lead-1", true); err != nil {
					t.Fatal(err)
				}
			}
			for sql, want := range map[string]int{
				`SELECT count(*) FROM core.entities`:                       2,
				`SELECT count(*) FROM core.entity_emails WHERE is_primary`: 1,
				`SELECT count(*) FROM core.entity_phones`:                  5,
				`SELECT count(*) FROM core.entity_addresses`:               4,
			} {
				if got := queryInt(t, pool, sql); got != want {
					t.Errorf("%s = %d, want %d", sql, got, want)
				}
			}
			assertJSON(t, "financials", rowsJSON(t, pool, `SELECT jsonb_build_object('income', reported_income, 'risk', risk_score)
				FROM core.entity_financials f JOIN core.entities e USING (entity_id) ORDER BY e.national_id`),
				`[{"income": 16150.95, "risk": 0.30}, {"income": 2345.66, "risk": null}]`)
		})
	}
}

// WritePersonsOn sends on the caller's connection, with the caller's
// statements after the COMMIT in the same round trip; when one of those
// fails, the persons are written all the same and the error says so.
func TestWritePersonsOnSendsAfterTheCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newCoreDB(t)
	w := newTestWriter(pool)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	p := fixture(t, "workapi/cpf.json")
	var backend int
	rs, err := w.WritePersonsOn(ctx, conn, []*person.Person{p}, []bool{true}, "lead-on", nil, func(b *pgx.Batch) {
		b.Queue(`SELECT set_config('leadflow.after', pg_backend_pid()::text, false)`)
	})
	if err != nil || rs[0].EntityID == "" {
		t.Fatalf("WritePersonsOn: %+v %v", rs, err)
	}
	// The statement after the COMMIT ran on the caller's connection.
	var after string
	if err := conn.QueryRow(ctx, `SELECT current_setting('leadflow.after', true), pg_backend_pid()`).Scan(&after, &backend); err != nil {
		t.Fatal(err)
	}
	if after != fmt.Sprint(backend) {
		t.Fatalf("the statement after the COMMIT ran on backend %q, want the caller's %d", after, backend)
	}
	q := fixture(t, "workapi/cpf_sparse.json")
	rs, err = w.WritePersonsOn(ctx, conn, []*person.Person{q}, []bool{true}, "lead-on", nil, func(b *pgx.Batch) {
		b.Queue(`SELECT 1/0`)
	})
	if !errors.Is(err, ErrAfterCommit) || len(rs) != 1 || rs[0].EntityID == "" {
		t.Fatalf("a failing statement after the COMMIT: %+v %v, want the result and ErrAfterCommit", rs, err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM core.entities WHERE national_id = $1`, q.CPF()); n != 1 {
		t.Fatalf("%d entities for the second person, want 1: its transaction committed", n)
	}
}
