// Package backbone gives a test the product's infrastructure and nothing
// else: an embedded JetStream server with the LEADS stream and a migrated
// database of its own, with no service consuming. (It lives apart from
// testinfra because it needs pkg/messaging and pkg/storage, whose own tests
// use testinfra.)
package backbone

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/messaging"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// Start returns a JetStream context with the stream provisioned and a pool on
// a freshly migrated database; everything is torn down at cleanup.
func Start(t *testing.T) (jetstream.JetStream, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	n := testinfra.StartNATS(t)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureStream(ctx, js, messaging.DefaultStreamSettings()); err != nil {
		t.Fatal(err)
	}
	pool := testinfra.NewPool(t, testinfra.NewDatabase(t))
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return js, pool
}
