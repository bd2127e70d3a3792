package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

func TestJSONBKeepsValidAndFixesWhatPostgresRefuses(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{`{"a":"x\u0000y"}`, `{"a":"xy"}`},
		{`{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`},
		{`{"a":"\ud83d"}`, `{"a":"\ufffd"}`},
		{`{"a":"\ude00x"}`, `{"a":"\ufffdx"}`},
		{`{"a":"\\u0000"}`, `{"a":"\\u0000"}`},
		{"{\"a\":\"\xff\"}", `{"a":"` + "\uFFFD" + `"}`},
		{`{"n":12345678901}`, `{"n":12345678901}`},
	}
	for _, c := range cases {
		if got := string(store.JSONB([]byte(c.in))); got != c.want {
			t.Errorf("JSONB(%q) = %q, want %q", c.in, got, c.want)
		}
		if !json.Valid(store.JSONB([]byte(c.in))) {
			t.Errorf("JSONB(%q) is not valid JSON", c.in)
		}
	}
}

// Every case above is accepted by a real jsonb column.
func TestJSONBIsStorable(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	for _, in := range []string{`{"a":"x\u0000y"}`, `{"a":"\ud83d"}`, `{"a":"\ude00"}`, "{\"a\":\"\xff\"}", `["\ud800\u0000\udfff"]`} {
		if _, err := pool.Exec(ctx, `SELECT $1::jsonb`, string(store.JSONB([]byte(in)))); err != nil {
			t.Errorf("jsonb refused JSONB(%q): %v", in, err)
		}
	}
}
