package pipeline_test

import (
	"context"
	"testing"

	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// KnownBoth answers each identifier from its own records: core.* first,
// then earlier resolutions, and "unknown" apart; one statement for both.
func TestKnownBothAnswersEachIdentifier(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO core.entities (entity_id, entity_type, national_id, name, created_at)
			VALUES ('00000000-0000-0000-0000-000000000001', 'person', '31860457207', 'A', now() - interval '1 day'),
			       ('00000000-0000-0000-0000-000000000002', 'person', '52998224725', 'B', now())`,
		// Two people share the phone: the oldest wins.
		`INSERT INTO core.entity_phones (entity_id, phone) VALUES
			('00000000-0000-0000-0000-000000000002', '11987650123'),
			('00000000-0000-0000-0000-000000000001', '11987650123')`,
		// An earlier resolution knows the phone otherwise: core.* wins.
		`INSERT INTO pipeline.identity_resolutions (kind, value, cpf, source) VALUES
			('phone', '11987650123', '11144477735', 'diretrix'),
			('email', 'b@example.com', '52998224725', 'diretrix')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// On its own and through a group (the resolver's wiring): the same answers.
	for _, ids := range []pipeline.Identities{{Pool: pool}, {Pool: pool, Group: store.NewGroup(pool, 4)}} {
		for _, c := range []struct {
			phone, email        string
			wantPhone, wantMail string
		}{
			{"11987650123", "b@example.com", "31860457207", "52998224725"},
			{"11900000000", "b@example.com", "", "52998224725"},
			{"11987650123", "nobody@example.com", "31860457207", ""},
			{"11900000000", "nobody@example.com", "", ""},
		} {
			pc, pf, ec, ef, err := ids.KnownBoth(ctx, c.phone, c.email)
			if err != nil {
				t.Fatal(err)
			}
			if pc != c.wantPhone || pf != (c.wantPhone != "") || ec != c.wantMail || ef != (c.wantMail != "") {
				t.Errorf("KnownBoth(%s, %s) = %q %v, %q %v; want %q, %q", c.phone, c.email, pc, pf, ec, ef, c.wantPhone, c.wantMail)
			}
			// The same answers one by one.
			p1, f1, _ := ids.KnownPhone(ctx, c.phone)
			e1, g1, _ := ids.KnownEmail(ctx, c.email)
			if p1 != pc || f1 != pf || e1 != ec || g1 != ef {
				t.Errorf("KnownBoth and KnownPhone/KnownEmail disagree for %s, %s", c.phone, c.email)
			}
		}
	}
}
