package coredb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadflow/leadflow/pkg/domain/brdata"
)

// ErrNotFound is returned when no person matches a query.
var ErrNotFound = errors.New("coredb: customer not found")

// ErrInvalidQuery is returned when a Query sets no field or more than one.
var ErrInvalidQuery = errors.New("coredb: query must set exactly one of CPF, Email, Phone, EntityID")

// Reader answers the resolver and the query API. Where duplicate entities
// exist it always picks the oldest, like the writer.
type Reader struct {
	pool *pgxpool.Pool
}

// NewReader returns a Reader on pool.
func NewReader(pool *pgxpool.Pool) *Reader { return &Reader{pool: pool} }

// Query selects one customer. Exactly one field must be set. Email and Phone
// are normalised here (brdata rules) so callers may pass raw input.
type Query struct {
	CPF      string
	Email    string
	Phone    string
	EntityID string
}

// Customer is the JSON-friendly view of one person. Money and risk are
// decimal strings ("16150.95"), never floats.
type Customer struct {
	EntityID      string          `json:"entity_id"`
	CPF           string          `json:"cpf"`
	Name          string          `json:"name,omitempty"`
	CanonicalName string          `json:"canonical_name,omitempty"`
	IsEnriched    bool            `json:"is_enriched"`
	EnrichedAt    *time.Time      `json:"enriched_at,omitempty"`
	DataSource    string          `json:"data_source,omitempty"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     time.Time       `json:"created_at"`
	Profile       *Profile        `json:"profile,omitempty"`
	Emails        []Email         `json:"emails"`
	Phones        []Phone         `json:"phones"`
	Addresses     []Address       `json:"addresses"`
	Financials    []Financial     `json:"financials"`
}

// Profile is core.entity_profiles. Dates are ISO "YYYY-MM-DD".
type Profile struct {
	Sex            string          `json:"sex,omitempty"`
	BirthDate      string          `json:"birth_date,omitempty"`
	DeathDate      string          `json:"death_date,omitempty"`
	Nationality    string          `json:"nationality,omitempty"`
	MaritalStatus  string          `json:"marital_status,omitempty"`
	EducationLevel string          `json:"education_level,omitempty"`
	Occupation     string          `json:"occupation,omitempty"`
	Metadata       json.RawMessage `json:"metadata"`
}

// Email is one core.entity_emails row.
type Email struct {
	Email      string          `json:"email"`
	Type       string          `json:"type,omitempty"`
	IsPrimary  bool            `json:"is_primary"`
	IsVerified bool            `json:"is_verified"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Phone is one core.entity_phones row; Phone is DDD + number digits.
type Phone struct {
	Phone      string          `json:"phone"`
	Type       string          `json:"type,omitempty"`
	IsPrimary  bool            `json:"is_primary"`
	IsWhatsapp bool            `json:"is_whatsapp"`
	IsVerified *bool           `json:"is_verified,omitempty"`
	Carrier    string          `json:"carrier,omitempty"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Address is one core.addresses row as linked by core.entity_addresses.
type Address struct {
	StreetType   string `json:"street_type,omitempty"`
	Street       string `json:"street,omitempty"`
	Number       string `json:"number,omitempty"`
	Complement   string `json:"complement,omitempty"`
	Neighborhood string `json:"neighborhood,omitempty"`
	City         string `json:"city,omitempty"`
	State        string `json:"state,omitempty"`
	ZipCode      string `json:"zip_code,omitempty"`
	AddressType  string `json:"address_type,omitempty"`
	IsPrimary    bool   `json:"is_primary"`
	IsCurrent    bool   `json:"is_current"`
	DataSource   string `json:"data_source,omitempty"`
}

// Financial is one core.entity_financials row.
type Financial struct {
	Year           int             `json:"year"`
	Month          *int            `json:"month,omitempty"`
	ReportedIncome *string         `json:"reported_income,omitempty"`
	CreditScore    *int            `json:"credit_score,omitempty"`
	RiskScore      *string         `json:"risk_score,omitempty"`
	Source         string          `json:"source,omitempty"`
	Confidence     string          `json:"confidence,omitempty"`
	Metadata       json.RawMessage `json:"metadata"`
}

// CustomerSummary is one SearchByName hit.
type CustomerSummary struct {
	EntityID   string `json:"entity_id"`
	CPF        string `json:"cpf"`
	Name       string `json:"name"`
	IsEnriched bool   `json:"is_enriched"`
}

// CPFByPhone returns the CPF of the oldest person holding the phone.
func (r *Reader) CPFByPhone(ctx context.Context, normalizedPhone string) (string, bool, error) {
	phone := brdata.NormalizePhone(normalizedPhone)
	if phone == "" {
		return "", false, nil
	}
	return r.cpfBy(ctx, SQLCPFByPhone, phone)
}

// CPFByEmail returns the CPF of the oldest person holding the email.
func (r *Reader) CPFByEmail(ctx context.Context, normalizedEmail string) (string, bool, error) {
	email := brdata.NormalizeEmail(normalizedEmail)
	if email == "" {
		return "", false, nil
	}
	return r.cpfBy(ctx, SQLCPFByEmail, email)
}

func (r *Reader) cpfBy(ctx context.Context, sql, arg string) (string, bool, error) {
	var cpf string
	err := r.pool.QueryRow(ctx, sql, arg).Scan(&cpf)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("coredb: cpf lookup: %w", err)
	}
	return cpf, true, nil
}

// SQLCPFByPhone and SQLCPFByEmail find the oldest person holding a
// normalised contact ($1). Exported so a caller can combine the lookup with
// its own records in one statement. Contacts are stored lower-case / as
// digits, so plain equality keeps the lookups on the email and phone indexes.
//
// The person is read per matching contact row through its primary key
// (LATERAL ... OFFSET 0 keeps the planner from turning it into a join): with
// statistics older than the table's growth (a fresh database, autovacuum
// behind), a join was planned as a sequential scan of core.entities, five
// times slower per lookup in cmd/bench.
const SQLCPFByPhone = `SELECT e.national_id FROM core.entity_phones x
CROSS JOIN LATERAL (SELECT p.national_id, p.created_at, p.entity_id FROM core.entities p
	WHERE p.entity_id = x.entity_id AND p.entity_type = 'person' AND coalesce(p.national_id, '') <> '' OFFSET 0) e
WHERE x.phone = $1
ORDER BY e.created_at, e.entity_id LIMIT 1`

// SQLCPFByEmail: see SQLCPFByPhone.
const SQLCPFByEmail = `SELECT e.national_id FROM core.entity_emails x
CROSS JOIN LATERAL (SELECT p.national_id, p.created_at, p.entity_id FROM core.entities p
	WHERE p.entity_id = x.entity_id AND p.entity_type = 'person' AND coalesce(p.national_id, '') <> '' OFFSET 0) e
WHERE x.email = $1
ORDER BY e.created_at, e.entity_id LIMIT 1`

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// GetCustomer returns one person with contacts, addresses and financials,
// read in one statement (one snapshot), or ErrNotFound.
func (r *Reader) GetCustomer(ctx context.Context, q Query) (*Customer, error) {
	var target, arg string
	set := 0
	if v := brdata.Digits(q.CPF); q.CPF != "" {
		set++
		target, arg = targetByCPF, v
	}
	if v := brdata.NormalizeEmail(q.Email); q.Email != "" {
		set++
		target, arg = targetByEmail, v
	}
	if v := brdata.NormalizePhone(q.Phone); q.Phone != "" {
		set++
		target, arg = targetByPhone, v
	}
	if v := strings.TrimSpace(q.EntityID); q.EntityID != "" {
		set++
		target, arg = targetByID, v
		// A malformed id cannot exist; answer like any unknown id instead of
		// letting the uuid cast fail.
		if !uuidRE.MatchString(v) {
			return nil, ErrNotFound
		}
	}
	if set != 1 {
		return nil, ErrInvalidQuery
	}
	if arg == "" {
		return nil, ErrNotFound
	}

	var (
		c                                      Customer
		profile, emails, phones, addrs, finans []byte
	)
	err := r.pool.QueryRow(ctx, "WITH t AS ("+target+")"+sqlCustomer, arg).Scan(
		&c.EntityID, &c.CPF, &c.Name, &c.CanonicalName, &c.IsEnriched, &c.EnrichedAt, &c.DataSource,
		&c.Metadata, &c.CreatedAt, &profile, &emails, &phones, &addrs, &finans)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("coredb: get customer: %w", err)
	}
	if profile != nil {
		c.Profile = &Profile{}
		if err := json.Unmarshal(profile, c.Profile); err != nil {
			return nil, fmt.Errorf("coredb: profile: %w", err)
		}
	}
	for _, part := range []struct {
		raw []byte
		v   any
	}{{emails, &c.Emails}, {phones, &c.Phones}, {addrs, &c.Addresses}, {finans, &c.Financials}} {
		if err := json.Unmarshal(part.raw, part.v); err != nil {
			return nil, fmt.Errorf("coredb: customer: %w", err)
		}
	}
	return &c, nil
}

const (
	targetByCPF = `SELECT entity_id FROM core.entities
	WHERE national_id = $1 AND entity_type = 'person' ORDER BY created_at, entity_id LIMIT 1`
	targetByEmail = `SELECT e.entity_id FROM core.entity_emails x JOIN core.entities e ON e.entity_id = x.entity_id
	WHERE x.email = $1 AND e.entity_type = 'person' ORDER BY e.created_at, e.entity_id LIMIT 1`
	targetByPhone = `SELECT e.entity_id FROM core.entity_phones x JOIN core.entities e ON e.entity_id = x.entity_id
	WHERE x.phone = $1 AND e.entity_type = 'person' ORDER BY e.created_at, e.entity_id LIMIT 1`
	targetByID = `SELECT entity_id FROM core.entities WHERE entity_id = $1::uuid AND entity_type = 'person'`
)

// Numerics are cast to text inside the JSON so they reach Go as exact
// decimal strings.
const sqlCustomer = `
SELECT e.entity_id::text, coalesce(e.national_id, ''), coalesce(e.name, ''), coalesce(e.canonical_name, ''),
	coalesce(e.is_enriched, false), e.enriched_at, coalesce(e.data_source::text, ''),
	coalesce(e.metadata, '{}'::jsonb), e.created_at,
	(SELECT json_build_object(
		'sex', p.sex, 'birth_date', p.birth_date::text, 'death_date', p.death_date::text,
		'nationality', p.nationality, 'marital_status', p.marital_status,
		'education_level', p.education_level, 'occupation', p.occupation, 'metadata', p.metadata)
	 FROM core.entity_profiles p WHERE p.entity_id = e.entity_id),
	(SELECT coalesce(json_agg(json_build_object(
		'email', x.email, 'type', x.email_type, 'is_primary', coalesce(x.is_primary, false),
		'is_verified', coalesce(x.is_verified, false), 'metadata', coalesce(x.metadata, '{}'::jsonb))
		ORDER BY x.is_primary DESC NULLS LAST, x.created_at, x.id), '[]')
	 FROM core.entity_emails x WHERE x.entity_id = e.entity_id),
	(SELECT coalesce(json_agg(json_build_object(
		'phone', x.phone, 'type', x.phone_type, 'is_primary', coalesce(x.is_primary, false),
		'is_whatsapp', coalesce(x.is_whatsapp, false), 'is_verified', x.is_verified,
		'carrier', x.carrier, 'metadata', coalesce(x.metadata, '{}'::jsonb))
		ORDER BY x.is_primary DESC NULLS LAST, x.created_at, x.id), '[]')
	 FROM core.entity_phones x WHERE x.entity_id = e.entity_id),
	(SELECT coalesce(json_agg(json_build_object(
		'street_type', a.street_type, 'street', a.street, 'number', a.number, 'complement', a.complement,
		'neighborhood', a.neighborhood, 'city', a.city, 'state', a.state, 'zip_code', a.zip_code,
		'address_type', x.address_type, 'is_primary', coalesce(x.is_primary, false),
		'is_current', coalesce(x.is_current, false), 'data_source', x.data_source)
		ORDER BY x.is_primary DESC NULLS LAST, x.created_at, x.id), '[]')
	 FROM core.entity_addresses x JOIN core.addresses a ON a.id = x.address_id WHERE x.entity_id = e.entity_id),
	(SELECT coalesce(json_agg(json_build_object(
		'year', f.financial_year, 'month', f.financial_month, 'reported_income', f.reported_income::text,
		'credit_score', f.credit_score, 'risk_score', f.risk_score::text, 'source', f.source,
		'confidence', f.confidence, 'metadata', coalesce(f.metadata, '{}'::jsonb))
		ORDER BY f.financial_year DESC, f.financial_month DESC NULLS FIRST, f.updated_at DESC), '[]')
	 FROM core.entity_financials f WHERE f.entity_id = e.entity_id)
FROM t JOIN core.entities e ON e.entity_id = t.entity_id`

// SearchByName finds persons whose name contains every word of name, case
// and accents ignored (pure SQL translate(), no unaccent extension needed).
// Duplicates of one CPF collapse to the oldest entity. limit <= 0 means 20;
// it is capped at 100.
func (r *Reader) SearchByName(ctx context.Context, name string, limit int) ([]CustomerSummary, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 100)
	words := strings.Fields(fold(clean(name)))
	if len(words) == 0 {
		return []CustomerSummary{}, nil
	}
	for i, w := range words {
		words[i] = likeEscaper.Replace(w)
	}
	rows, err := r.pool.Query(ctx, sqlSearchByName, words, limit, accentFrom, accentTo)
	if err != nil {
		return nil, fmt.Errorf("coredb: search: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CustomerSummary])
	if err != nil {
		return nil, fmt.Errorf("coredb: search: %w", err)
	}
	if out == nil {
		out = []CustomerSummary{}
	}
	return out, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Matches are grouped per CPF (entities without one stand alone), then the
// oldest entity of each group is returned, even if only a younger duplicate
// matched the name. Results are sorted by folded name so the order does not
// depend on the database collation.
const sqlSearchByName = `WITH m AS (
	SELECT DISTINCT nullif(e.national_id, '') AS cpf,
		CASE WHEN coalesce(e.national_id, '') = '' THEN e.entity_id END AS id
	FROM core.entities e
	WHERE e.entity_type = 'person'
		AND (SELECT bool_and(lower(translate(coalesce(e.name, e.canonical_name, ''), $3::text, $4::text)) LIKE '%' || w || '%')
		     FROM unnest($1::text[]) AS w)
)
SELECT o.entity_id::text, coalesce(o.national_id, ''), coalesce(o.name, o.canonical_name, ''), coalesce(o.is_enriched, false)
FROM m CROSS JOIN LATERAL (
	SELECT x.* FROM core.entities x
	WHERE x.entity_type = 'person' AND (x.national_id = m.cpf OR x.entity_id = m.id)
	ORDER BY x.created_at, x.entity_id LIMIT 1
) o
ORDER BY lower(translate(coalesce(o.name, o.canonical_name, ''), $3::text, $4::text)) COLLATE "C", 2, 1
LIMIT $2`
