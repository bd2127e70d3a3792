package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterKeepsAnR3StreamThroughANodeLoss: a 3-node cluster holds an R3
// stream; with one node down it still takes writes, and the node catches up
// when it comes back.
func TestClusterKeepsAnR3StreamThroughANodeLoss(t *testing.T) {
	c, err := StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for i := 0; i < n; i++ {
			for {
				// Each try has its own timeout: an ack lost while the
				// leader moves must not hold the whole test.
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(pctx, "t.x", []byte("x"))
				pcancel()
				if err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	publish(10)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("cluster info %+v", info.Cluster)
	}
	c.Stop(leader, false)
	publish(10)
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	publish(10)
	for {
		info, err = st.Info(ctx)
		if err == nil && info.State.Msgs == 30 && len(info.Cluster.Replicas) == 2 && allCurrent(info.Cluster.Replicas) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream did not heal: %+v %v", info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func allCurrent(ps []*jetstream.PeerInfo) bool {
	for _, p := range ps {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}
