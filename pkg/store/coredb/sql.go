package coredb

// sqlPerson writes one person in one statement, under the per-CPF advisory
// lock (sqlLock, earlier in the same transaction): the entity, then
// everything hanging from it, each part a data-modifying CTE on its own
// tables. Data-modifying CTEs always run to completion, and the foreign keys
// are checked at the end of the statement, so the details may point at an
// entity the same statement inserts: they take its id from e (the upsert's
// RETURNING), not from a second lookup.

// A 64-bit key derived in SQL, so any other writer of core.entities can take
// the same lock without sharing Go code.
const sqlLock = `SELECT pg_advisory_xact_lock(hashtextextended('core.entity:' || $1::text, 0))`

// The entity: the oldest row with the CPF wins (entity_id breaks created_at
// ties, so readers and writers agree on the same row); it is updated, or
// inserted when there is none. Empty names are filled, never replaced.
//
// The profile: existing columns win (COALESCE); the metadata merge is
// existing || new, as DB.md says. The financial year: latest wins, every
// value column is replaced, NULLs included. A profile or financial year the
// payload would not change is not rewritten at all (DB.md: the same payload
// again changes nothing except timestamps), so a repeat CPF's merge writes
// one row version (the entity's enriched_at) instead of three. Contacts: the
// arrays are the payload's entries in order, deduplicated. Only ordinal 1 may become
// primary, and only if no primary existed before. clock_timestamp() keeps
// the payload order visible in created_at. The entity's current contacts are
// read once, by entity_id (an index scan even on tables never analysed),
// instead of anti-joining the whole table. An address counts as linked when
// (street, number, zip digits) match, legacy empty strings counting as NULL;
// address ids are drawn in a MATERIALIZED CTE so both inserts see the same
// ids.
//
// $1 CPF; profile $2 sex, $3 birth date (ISO), $4 nationality, $5 marital
// status, $6 education level, $7 metadata; financial $8 (write it?), $9
// year, $10 income, $11 credit score, $12 risk, $13 metadata; e-mails $14
// emails, $15 verified, $16 metadata; phones $17 phones, $18 types, $19
// whatsapp, $20 carriers, $21 metadata; addresses $22..$29 street_type,
// street, number, complement, neighborhood, city, state, zip_code; entity
// $30 name, $31 canonical name, $32 lead id (NULL = no lead). Returns the
// entity id, whether it was created, and the e-mails, phones and address
// links added.
const sqlPerson = `WITH found AS (
	SELECT entity_id FROM core.entities
	WHERE national_id = $1 AND entity_type = 'person'
	ORDER BY created_at, entity_id
	LIMIT 1
),
upd AS (
	UPDATE core.entities t SET
		name = CASE WHEN coalesce(btrim(t.name), '') = '' AND $30::text IS NOT NULL THEN $30::text ELSE t.name END,
		canonical_name = CASE WHEN coalesce(btrim(t.canonical_name), '') = '' AND $31::text IS NOT NULL THEN $31::text ELSE t.canonical_name END,
		is_enriched = true,
		enriched_at = now(),
		updated_at = now(),
		metadata = CASE WHEN $32::text IS NULL THEN t.metadata
			ELSE coalesce(t.metadata, '{}'::jsonb) || jsonb_build_object('c2s_lead_id', $32::text) END
	WHERE t.entity_id = (SELECT entity_id FROM found)
	RETURNING t.entity_id
),
ins AS (
	INSERT INTO core.entities (entity_type, national_id, name, canonical_name, is_enriched, enriched_at, data_source, metadata)
	SELECT 'person', $1, $30::text, $31::text, true, now(), 'api',
		CASE WHEN $32::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('c2s_lead_id', $32::text) END
	WHERE NOT EXISTS (SELECT 1 FROM found)
	RETURNING entity_id
),
e AS MATERIALIZED (
	SELECT entity_id, false AS created FROM upd
	UNION ALL
	SELECT entity_id, true FROM ins
),
prof AS (
	INSERT INTO core.entity_profiles AS p (entity_id, sex, birth_date, nationality, marital_status, education_level, metadata)
	SELECT e.entity_id, $2::text, $3::text::date, $4::text, $5::text, $6::text, $7::text::jsonb FROM e
	ON CONFLICT (entity_id) DO UPDATE SET
		sex = COALESCE(p.sex, EXCLUDED.sex),
		birth_date = COALESCE(p.birth_date, EXCLUDED.birth_date),
		nationality = COALESCE(p.nationality, EXCLUDED.nationality),
		marital_status = COALESCE(p.marital_status, EXCLUDED.marital_status),
		education_level = COALESCE(p.education_level, EXCLUDED.education_level),
		metadata = p.metadata || EXCLUDED.metadata,
		updated_at = now()
	WHERE (p.sex, p.birth_date, p.nationality, p.marital_status, p.education_level, p.metadata)
		IS DISTINCT FROM (COALESCE(p.sex, EXCLUDED.sex), COALESCE(p.birth_date, EXCLUDED.birth_date),
			COALESCE(p.nationality, EXCLUDED.nationality), COALESCE(p.marital_status, EXCLUDED.marital_status),
			COALESCE(p.education_level, EXCLUDED.education_level), p.metadata || EXCLUDED.metadata)
),
fin_cur AS MATERIALIZED (
	SELECT f.id, (f.reported_income, f.credit_score, f.risk_score, f.source, f.confidence, f.metadata)
		IS NOT DISTINCT FROM ($10::text::numeric, $11::int, $12::text::numeric, 'api'::core.data_source_enum, 'high'::core.confidence_level, $13::text::jsonb) AS same
	FROM core.entity_financials f
	WHERE $8::bool AND f.entity_id = (SELECT entity_id FROM e) AND f.financial_year = $9::int AND f.financial_month IS NULL
),
fin_upd AS (
	UPDATE core.entity_financials f SET
		reported_income = $10::text::numeric,
		credit_score = $11::int,
		risk_score = $12::text::numeric,
		source = 'api',
		confidence = 'high',
		metadata = $13::text::jsonb,
		updated_at = now()
	FROM fin_cur WHERE f.id = fin_cur.id AND NOT fin_cur.same
),
fin_ins AS (
	INSERT INTO core.entity_financials (entity_id, financial_year, financial_month, reported_income, credit_score, risk_score, source, confidence, metadata)
	SELECT e.entity_id, $9::int, NULL, $10::text::numeric, $11::int, $12::text::numeric, 'api', 'high', $13::text::jsonb
	FROM e WHERE $8::bool AND NOT EXISTS (SELECT 1 FROM fin_cur)
),
em_cur AS MATERIALIZED (
	SELECT lower(x.email) AS email, x.is_primary FROM core.entity_emails x
	WHERE x.entity_id = (SELECT entity_id FROM e)
),
em_src AS (SELECT * FROM unnest($14::text[], $15::bool[], $16::text[]) WITH ORDINALITY AS s(email, verified, meta, ord)),
em_ins AS (
	INSERT INTO core.entity_emails (entity_id, email, email_type, is_primary, is_verified, metadata, created_at)
	SELECT e.entity_id, s.email, 'personal', s.ord = 1 AND NOT EXISTS (SELECT 1 FROM em_cur WHERE em_cur.is_primary),
		s.verified, s.meta::jsonb, clock_timestamp()
	FROM e CROSS JOIN em_src s
	WHERE NOT EXISTS (SELECT 1 FROM em_cur WHERE em_cur.email = s.email)
	ORDER BY s.ord
	RETURNING 1
),
ph_cur AS MATERIALIZED (
	SELECT x.phone, x.is_primary FROM core.entity_phones x
	WHERE x.entity_id = (SELECT entity_id FROM e) AND x.phone IS NOT NULL -- the only entity_id index is partial
),
ph_src AS (SELECT * FROM unnest($17::text[], $18::text[], $19::bool[], $20::text[], $21::text[]) WITH ORDINALITY AS s(phone, phone_type, whatsapp, carrier, meta, ord)),
ph_ins AS (
	INSERT INTO core.entity_phones (entity_id, phone, phone_type, is_primary, is_whatsapp, carrier, metadata, created_at)
	SELECT e.entity_id, s.phone, s.phone_type, s.ord = 1 AND NOT EXISTS (SELECT 1 FROM ph_cur WHERE ph_cur.is_primary),
		s.whatsapp, s.carrier, s.meta::jsonb, clock_timestamp()
	FROM e CROSS JOIN ph_src s
	WHERE NOT EXISTS (SELECT 1 FROM ph_cur WHERE ph_cur.phone = s.phone)
	ORDER BY s.ord
	RETURNING 1
),
ad_links AS MATERIALIZED (
	SELECT x.address_id, x.is_primary FROM core.entity_addresses x
	WHERE x.entity_id = (SELECT entity_id FROM e)
),
ad_cur AS MATERIALIZED (
	SELECT coalesce(a.street, '') AS street, coalesce(a.number, '') AS number,
		regexp_replace(coalesce(a.zip_code, ''), '[^0-9]', '', 'g') AS zip_code
	FROM core.addresses a
	WHERE a.id = ANY (ARRAY(SELECT address_id FROM ad_links)) -- primary-key lookups, never a hash join
),
ad_src AS (
	SELECT * FROM unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::text[])
		WITH ORDINALITY AS s(street_type, street, number, complement, neighborhood, city, state, zip_code, ord)
),
ad_todo AS MATERIALIZED (
	SELECT gen_random_uuid() AS id, s.* FROM e CROSS JOIN ad_src s
	WHERE NOT EXISTS (
		SELECT 1 FROM ad_cur
		WHERE ad_cur.street = coalesce(s.street, '') AND ad_cur.number = coalesce(s.number, '')
			AND ad_cur.zip_code = coalesce(s.zip_code, '')
	)
),
ad_ins AS (
	INSERT INTO core.addresses (id, street_type, street, number, complement, neighborhood, city, state, zip_code, created_at)
	SELECT id, street_type, street, number, complement, neighborhood, city, state, zip_code, clock_timestamp()
	FROM ad_todo ORDER BY ord
),
ad_link AS (
	INSERT INTO core.entity_addresses (entity_id, address_id, address_type, is_primary, is_current, data_source, created_at)
	SELECT e.entity_id, t.id, 'residential', t.ord = 1 AND NOT EXISTS (SELECT 1 FROM ad_links WHERE ad_links.is_primary),
		true, 'api', clock_timestamp()
	FROM e CROSS JOIN ad_todo t
	ORDER BY t.ord
	RETURNING 1
)
SELECT (SELECT entity_id::text FROM e), (SELECT created FROM e), (SELECT count(*) FROM em_ins)::int, (SELECT count(*) FROM ph_ins)::int, (SELECT count(*) FROM ad_link)::int`

// sqlNewPerson writes a person that is not in core.* yet, with sqlPerson's
// parameters and result columns: the same rows sqlPerson writes for a new
// entity (contacts in payload order, the first of each kind primary), without
// reading current contacts, anti-joins or upserts, so it costs Postgres about
// 0.6x the CPU (BenchmarkWritePerson). When an entity with the CPF exists it
// writes nothing and returns a NULL entity id; the caller then merges with
// sqlPerson.
const sqlNewPerson = `WITH ins AS (
	INSERT INTO core.entities (entity_type, national_id, name, canonical_name, is_enriched, enriched_at, data_source, metadata)
	SELECT 'person', $1, $30::text, $31::text, true, now(), 'api',
		CASE WHEN $32::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('c2s_lead_id', $32::text) END
	WHERE NOT EXISTS (SELECT 1 FROM core.entities WHERE national_id = $1 AND entity_type = 'person')
	RETURNING entity_id
),
prof AS (
	INSERT INTO core.entity_profiles (entity_id, sex, birth_date, nationality, marital_status, education_level, metadata)
	SELECT entity_id, $2::text, $3::text::date, $4::text, $5::text, $6::text, $7::text::jsonb FROM ins
),
fin AS (
	INSERT INTO core.entity_financials (entity_id, financial_year, financial_month, reported_income, credit_score, risk_score, source, confidence, metadata)
	SELECT entity_id, $9::int, NULL, $10::text::numeric, $11::int, $12::text::numeric, 'api', 'high', $13::text::jsonb
	FROM ins WHERE $8::bool
),
em AS (
	INSERT INTO core.entity_emails (entity_id, email, email_type, is_primary, is_verified, metadata, created_at)
	SELECT ins.entity_id, s.email, 'personal', s.ord = 1, s.verified, s.meta::jsonb, clock_timestamp()
	FROM ins CROSS JOIN unnest($14::text[], $15::bool[], $16::text[]) WITH ORDINALITY AS s(email, verified, meta, ord)
	ORDER BY s.ord
	RETURNING 1
),
ph AS (
	INSERT INTO core.entity_phones (entity_id, phone, phone_type, is_primary, is_whatsapp, carrier, metadata, created_at)
	SELECT ins.entity_id, s.phone, s.phone_type, s.ord = 1, s.whatsapp, s.carrier, s.meta::jsonb, clock_timestamp()
	FROM ins CROSS JOIN unnest($17::text[], $18::text[], $19::bool[], $20::text[], $21::text[])
		WITH ORDINALITY AS s(phone, phone_type, whatsapp, carrier, meta, ord)
	ORDER BY s.ord
	RETURNING 1
),
ad AS MATERIALIZED (
	SELECT gen_random_uuid() AS id, ins.entity_id, s.* FROM ins CROSS JOIN
		unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::text[])
		WITH ORDINALITY AS s(street_type, street, number, complement, neighborhood, city, state, zip_code, ord)
),
ad_ins AS (
	INSERT INTO core.addresses (id, street_type, street, number, complement, neighborhood, city, state, zip_code, created_at)
	SELECT id, street_type, street, number, complement, neighborhood, city, state, zip_code, clock_timestamp()
	FROM ad ORDER BY ord
),
ad_link AS (
	INSERT INTO core.entity_addresses (entity_id, address_id, address_type, is_primary, is_current, data_source, created_at)
	SELECT entity_id, id, 'residential', ord = 1, true, 'api', clock_timestamp()
	FROM ad ORDER BY ord
	RETURNING 1
)
SELECT (SELECT entity_id::text FROM ins), true, (SELECT count(*) FROM em)::int, (SELECT count(*) FROM ph)::int, (SELECT count(*) FROM ad_link)::int`
