package coredb

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// readerDB holds the full and sparse persons, an older entity of another CPF
// sharing one of Helena's mobiles, and a younger duplicate of Helena's CPF.
// Younger rows are inserted before older ones, so only an explicit ORDER BY
// created_at (never heap or index order) finds the oldest.
func readerDB(t *testing.T) (*pgxpool.Pool, *Reader, Result) {
	t.Helper()
	pool := newCoreDB(t)
	ctx := context.Background()
	mustExec(t, pool, `WITH e AS (INSERT INTO core.entities (entity_type, national_id, name, created_at)
		VALUES ('person', $1, 'HELENA DUPLICADA', now() + interval '1 day') RETURNING entity_id)
		INSERT INTO core.entity_emails (entity_id, email) SELECT entity_id, 'dup@example.com' FROM e`, fullCPF)
	// An older, empty row of the same CPF: the writer fills it.
	mustExec(t, pool, `INSERT INTO core.entities (entity_type, national_id, data_source, created_at)
		VALUES ('person', $1, 'api', now() - interval '1 hour')`, fullCPF)
	w := newTestWriter(pool)
	full, err := w.WritePerson(ctx, fixture(t, "workapi/cpf.json"), "lead-1")
	if err != nil {
		t.Fatal(err)
	}
	if full.Created {
		t.Fatal("the writer created an entity instead of filling the oldest")
	}
	if _, err := w.WritePerson(ctx, fixture(t, "workapi/cpf_sparse.json"), ""); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `WITH e AS (INSERT INTO core.entities (entity_type, national_id, name, created_at)
		VALUES ('person', '52998224725', 'JOÃO DA CONCEIÇÃO', now() - interval '1 day') RETURNING entity_id)
		INSERT INTO core.entity_phones (entity_id, phone) SELECT entity_id, '11976540987' FROM e`)
	mustExec(t, pool, `INSERT INTO core.entity_emails (entity_id, email)
		SELECT entity_id, 'hmduarte.trabalho@example.com' FROM core.entities WHERE national_id = '52998224725'`)
	return pool, NewReader(pool), full
}

func TestCPFLookups(t *testing.T) {
	t.Parallel()
	_, r, _ := readerDB(t)
	tests := []struct {
		name, value string
		byEmail     bool
		wantCPF     string
		wantFound   bool
	}{
		{name: "phone with country code", value: "5511987650123", wantCPF: fullCPF, wantFound: true},
		{name: "formatted phone", value: "(15) 99123-0987", wantCPF: sparseCPF, wantFound: true},
		{name: "landline", value: "1133021234", wantCPF: fullCPF, wantFound: true},
		{name: "phone shared: oldest entity wins", value: "11976540987", wantCPF: "52998224725", wantFound: true},
		{name: "unknown phone", value: "11911112222"},
		{name: "empty phone", value: ""},
		{name: "email any case", byEmail: true, value: " Helena.Duarte@Example.com ", wantCPF: fullCPF, wantFound: true},
		{name: "email of a younger duplicate", byEmail: true, value: "dup@example.com", wantCPF: fullCPF, wantFound: true},
		{name: "email shared: oldest entity wins", byEmail: true, value: "hmduarte.trabalho@example.com", wantCPF: "52998224725", wantFound: true},
		{name: "unknown email", byEmail: true, value: "nobody@example.com"},
		{name: "empty email", byEmail: true, value: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				cpf   string
				found bool
				err   error
			)
			if tc.byEmail {
				cpf, found, err = r.CPFByEmail(context.Background(), tc.value)
			} else {
				cpf, found, err = r.CPFByPhone(context.Background(), tc.value)
			}
			if err != nil {
				t.Fatal(err)
			}
			if cpf != tc.wantCPF || found != tc.wantFound {
				t.Errorf("got (%q, %v), want (%q, %v)", cpf, found, tc.wantCPF, tc.wantFound)
			}
		})
	}
}

func TestGetCustomer(t *testing.T) {
	t.Parallel()
	_, r, full := readerDB(t)
	ctx := context.Background()
	for _, q := range []Query{
		{CPF: fullCPF},
		{CPF: "318.604.572-07"},
		{Email: "HELENA.MD@example.com"},
		{Phone: "+55 (11) 3302-1234"},
		{EntityID: full.EntityID},
	} {
		c, err := r.GetCustomer(ctx, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if c.EntityID != full.EntityID {
			t.Errorf("%+v: entity %s, want the oldest %s", q, c.EntityID, full.EntityID)
		}
	}

	// Contacts shared with an older person resolve to that person.
	for _, q := range []Query{{Email: "hmduarte.trabalho@example.com"}, {Phone: "11976540987"}} {
		c, err := r.GetCustomer(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if c.CPF != "52998224725" || c.Name != "JOÃO DA CONCEIÇÃO" || c.Profile != nil || len(c.Financials) != 0 {
			t.Errorf("%+v: got %+v, want the older JOÃO without profile or financials", q, c)
		}
	}

	c, err := r.GetCustomer(ctx, Query{CPF: fullCPF})
	if err != nil {
		t.Fatal(err)
	}
	if c.CPF != fullCPF || c.Name != "HELENA MARQUES DUARTE" || !c.IsEnriched || c.EnrichedAt == nil ||
		c.DataSource != "api" || string(c.Metadata) != `{"c2s_lead_id": "lead-1"}` {
		t.Errorf("entity = %+v", c)
	}
	if p := c.Profile; p == nil || p.Sex != "F" || p.BirthDate != "1986-03-14" || p.MaritalStatus != "CASADO(A)" ||
		p.EducationLevel != "ENSINO SUPERIOR COMPLETO" || p.Nationality != "BRASILEIRA" {
		t.Errorf("profile = %+v", c.Profile)
	}
	if len(c.Emails) != 4 || c.Emails[0].Email != "helena.duarte@example.com" || !c.Emails[0].IsPrimary ||
		c.Emails[2].IsVerified || c.Emails[3].Email != "hmduarte.trabalho@example.com" {
		t.Errorf("emails = %+v", c.Emails)
	}
	if len(c.Phones) != 4 || c.Phones[0].Phone != "11987650123" || !c.Phones[0].IsWhatsapp || c.Phones[1].Type != "landline" ||
		c.Phones[3].Carrier != "OI" || c.Phones[0].IsVerified != nil {
		t.Errorf("phones = %+v", c.Phones)
	}
	if len(c.Addresses) != 3 || c.Addresses[0].ZipCode != "01000900" || !c.Addresses[0].IsPrimary ||
		c.Addresses[1].Number != "" || c.Addresses[2].City != "SANTOS" || c.Addresses[2].AddressType != "residential" {
		t.Errorf("addresses = %+v", c.Addresses)
	}
	if len(c.Financials) != 1 {
		t.Fatalf("financials = %+v", c.Financials)
	}
	f := c.Financials[0]
	if f.Year != 2025 || f.Month != nil || f.ReportedIncome == nil || *f.ReportedIncome != "16150.95" ||
		f.CreditScore == nil || *f.CreditScore != 845 || f.RiskScore == nil || *f.RiskScore != "0.30" ||
		f.Source != "api" || f.Confidence != "high" {
		t.Errorf("financial = %+v", f)
	}

	// Money stays a decimal string on the wire.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Financials []map[string]any `json:"financials"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	if wire.Financials[0]["reported_income"] != "16150.95" || wire.Financials[0]["risk_score"] != "0.30" {
		t.Errorf("wire financials = %v", wire.Financials)
	}

	s, err := r.GetCustomer(ctx, Query{Phone: "15991230987"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Emails) != 0 || s.Emails == nil || len(s.Phones) != 1 || len(s.Addresses) != 1 ||
		s.Financials[0].CreditScore != nil || s.Financials[0].RiskScore != nil || *s.Financials[0].ReportedIncome != "2345.66" {
		t.Errorf("sparse = %+v", s)
	}
}

func TestGetCustomerErrors(t *testing.T) {
	t.Parallel()
	_, r, _ := readerDB(t)
	for name, tc := range map[string]struct {
		q    Query
		want error
	}{
		"unknown cpf":        {Query{CPF: "11144477735"}, ErrNotFound},
		"unknown email":      {Query{Email: "x@example.com"}, ErrNotFound},
		"unknown phone":      {Query{Phone: "11900000000"}, ErrNotFound},
		"unknown entity id":  {Query{EntityID: "6f1c1f5e-2b1a-4c3d-9e8f-0a1b2c3d4e5f"}, ErrNotFound},
		"malformed id":       {Query{EntityID: "not-a-uuid"}, ErrNotFound},
		"cpf without digits": {Query{CPF: "abc"}, ErrNotFound},
		"empty query":        {Query{}, ErrInvalidQuery},
		"two fields":         {Query{CPF: fullCPF, Email: "helena.duarte@example.com"}, ErrInvalidQuery},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := r.GetCustomer(context.Background(), tc.q)
			if !errors.Is(err, tc.want) || c != nil {
				t.Errorf("got (%v, %v), want %v", c, err, tc.want)
			}
		})
	}
}

func TestSearchByName(t *testing.T) {
	t.Parallel()
	pool, r, full := readerDB(t)
	// A younger duplicate whose name alone matches still yields the oldest entity.
	mustExec(t, pool, `INSERT INTO core.entities (entity_type, national_id, name, created_at)
		VALUES ('person', $1, 'OUTRO NOME ÚNICO', now() + interval '2 days')`, fullCPF)
	mustExec(t, pool, `INSERT INTO core.entities (entity_type, name) VALUES ('person', 'Ana Sem Cpf')`)
	mustExec(t, pool, `INSERT INTO core.entities (entity_type, national_id, name) VALUES ('company', '73820146000157', 'HELENA LTDA')`)

	tests := []struct {
		query string
		limit int
		want  []string // CPFs, or names for entities without one
	}{
		{"helena", 0, []string{fullCPF}},
		{"HÉLENA   duarte", 10, []string{fullCPF}},
		{"duarte helena", 10, []string{fullCPF}},
		{"otávio lins", 10, []string{sparseCPF}},
		{"joao conceicao", 10, []string{"52998224725"}},
		{"Conceição", 10, []string{"52998224725"}},
		{"único", 10, []string{fullCPF}},
		{"ana sem", 10, []string{"Ana Sem Cpf"}},
		{"a", 2, []string{"Ana Sem Cpf", fullCPF}}, // sorted by folded name
		{"%", 10, nil},
		{"_", 10, nil},
		{"xyz", 10, nil},
		{"   ", 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			got, err := r.SearchByName(context.Background(), tc.query, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("nil slice: the API would print null")
			}
			var keys []string
			for _, s := range got {
				key := s.CPF
				if key == "" {
					key = s.Name
				}
				keys = append(keys, key)
				if s.CPF == fullCPF && (s.EntityID != full.EntityID || s.Name != "HELENA MARQUES DUARTE" || !s.IsEnriched) {
					t.Errorf("duplicate CPF gave %+v, want the oldest entity %s", s, full.EntityID)
				}
			}
			if len(keys) != len(tc.want) {
				t.Fatalf("got %v, want %v", keys, tc.want)
			}
			for i := range keys {
				if keys[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", keys, tc.want)
				}
			}
		})
	}
}
