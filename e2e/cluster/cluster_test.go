// Package cluster runs the product on a 3-node NATS JetStream cluster: R3
// stream and consumers, two instances of every service, and one node shut
// down and brought back while leads keep coming.
//
// The short form (default) stops a node in lame duck mode, as the deploy
// files do (SIGUSR2); LEADFLOW_LONG=1 also kills the stream's leader at once,
// like a crash, and then waits out the redeliveries of whatever that node
// held (the consumers' ack wait is a minute).
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/backbone/embedded"
	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNodeLossLosesNothing(t *testing.T) {
	t.Run("lame duck", func(t *testing.T) { run(t, 120, false) })
	if os.Getenv("LEADFLOW_LONG") == "" {
		return
	}
	t.Run("crash of the stream leader", func(t *testing.T) { run(t, 300, true) })
}

func run(t *testing.T, leads int, crash bool) {
	start := time.Now()
	cl, err := embedded.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Shutdown)

	env := map[string]string{
		"DATABASE_URL":      testinfra.NewDatabase(t),
		"NATS_URL":          cl.URL(),
		"STREAM_REPLICAS":   "3",
		"LOG_LEVEL":         "error",
		"NOTIFY_UNRESOLVED": "true", // every lead ends with one message
		"RESOLVER_WORKERS":  "8", "ENRICHER_WORKERS": "8", "NOTIFIER_WORKERS": "8",
		"DB_MAX_CONNS": "4",
		// The enricher's ack wait is the Work API timeout × tries + 1 min:
		// keep it near a minute, so a delivery lost with a node comes back
		// within the wait below.
		"WORK_API_TIMEOUT": "5s",
	}
	for _, p := range []string{"WORK_API", "C2S", "DIRETRIX"} {
		env[p+"_RATE"], env[p+"_CONCURRENCY"] = "0", "0"
	}
	logs := &syncBuffer{}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Replicas: 2, Log: logs,
		Sim: sim.Config{Seed: 11, People: leads, Leads: leads}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			out := logs.String()
			t.Logf("service logs (tail):\n%s", out[max(0, len(out)-8000):])
		}
	})
	if len(s.IngestURLs) != 2 {
		t.Fatalf("ingest instances %v", s.IngestURLs)
	}

	nc, err := nats.Connect(cl.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// R3 stream, and the durable consumers as replicated as the stream.
	info, err := streamInfo(ctx, js)
	if err != nil || info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream %+v, %v", info, err)
	}
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	replicas := map[string]int{}
	for ci := range st.ListConsumers(ctx).Info() { // push or pull alike
		replicas[ci.Name] = ci.Config.Replicas
	}
	for _, d := range []string{"resolver__leads_received", "enricher__leads_resolved", "notifier__leads_enriched", "notifier__leads_unresolved"} {
		if r := replicas[d]; r != 3 {
			t.Errorf("consumer %s has %d replicas, want 3 (CONSUMER_REPLICAS defaults to the stream's)", d, r)
		}
	}

	// A steady flow of webhooks, alternating between the two ingests,
	// each retried until acknowledged (as C2S retries).
	var bodies []sim.Lead
	for _, l := range s.Sims.Pop.Leads() {
		if len(bodies) < leads && l.ID != sim.ContractLeadID {
			bodies = append(bodies, l)
		}
	}
	if len(bodies) < leads {
		t.Fatalf("population has %d leads", len(bodies))
	}
	var posted, retried atomic.Int64
	flowDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(60 * time.Millisecond) // ~16 leads/s
		defer tick.Stop()
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for i, l := range bodies {
			<-tick.C
			wg.Add(1)
			go func(i int, l sim.Lead) {
				defer wg.Done()
				if err := postUntilAccepted(ctx, s.IngestURLs[i%2], s.Env["WEBHOOK_SECRET"], l, &retried); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				posted.Add(1)
			}(i, l)
		}
		wg.Wait()
		err, _ := firstErr.Load().(error)
		flowDone <- err
	}()

	// A third of the way in, a node goes down; it comes back 4 s later.
	for posted.Load() < int64(leads/3) {
		time.Sleep(20 * time.Millisecond)
	}
	victim := 1
	if crash {
		if info, err := streamInfo(ctx, js); err == nil {
			victim = cl.Index(info.Cluster.Leader)
		}
	}
	t.Logf("stopping %s (crash=%v) after %d leads, %s in", cl.Name(victim), crash, posted.Load(), time.Since(start).Round(time.Millisecond))
	cl.Stop(victim, !crash)
	time.Sleep(4 * time.Second)
	if err := cl.Restart(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s back after %d leads", cl.Name(victim), posted.Load())
	if err := <-flowDone; err != nil {
		t.Fatal(err)
	}

	// Nothing lost: every lead gets its message. Nothing twice: exactly one.
	// Deliveries in flight on the node that went away come back after the
	// ack wait (a minute; 70 s for the enricher here).
	wait := 2 * time.Minute
	if crash {
		wait = 4 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		missing := 0
		for _, l := range bodies {
			if len(s.Sims.C2S.Messages(l.ID)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d leads were never notified", missing, len(bodies))
		}
		time.Sleep(200 * time.Millisecond)
	}
	unique := map[string]bool{}
	for _, l := range bodies {
		if n := len(s.Sims.C2S.Messages(l.ID)); n != 1 {
			t.Errorf("lead %s got %d messages, want 1", l.ID, n)
		}
		for _, cpf := range s.Sims.Pop.ExpectedPersons(l.ID) {
			unique[cpf] = true
		}
	}
	// Paid once per person: Work API calls equal the unique CPFs.
	if paid := s.Sims.WorkAPI.TotalPaidCalls(); paid != int64(len(unique)) {
		t.Errorf("paid Work API calls %d, unique CPFs %d", paid, len(unique))
	}
	for cpf, n := range s.Sims.WorkAPI.Paid() {
		if n != 1 {
			t.Errorf("CPF …%s paid %d times", cpf[len(cpf)-2:], n)
		}
	}
	// The stream healed: all three replicas current again.
	for {
		info, err := streamInfo(ctx, js)
		if err == nil && len(info.Cluster.Replicas) == 2 && info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream replicas did not catch up: %+v %v", info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d leads, %d webhook retries during the outage, %d unique CPFs paid once, %s", len(bodies), retried.Load(), len(unique), time.Since(start).Round(time.Second))
}

func streamInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.StreamInfo, error) {
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

var client = &http.Client{Timeout: 10 * time.Second}

// postUntilAccepted delivers a lead's on_create_lead webhook, retrying on
// errors and 5xx until ingest answers 202 (or 200 duplicate: an earlier try
// was stored).
func postUntilAccepted(ctx context.Context, base, secret string, l sim.Lead, retried *atomic.Int64) error {
	body, _ := json.Marshal(map[string]any{
		"id": l.ID, "hook_action": "on_create_lead",
		"attributes": map[string]any{
			"updated_at": "2025-11-21T13:30:00Z",
			"customer":   map[string]any{"name": l.Name, "phone": l.Phone, "email": l.Email},
		},
	})
	for {
		resp, err := client.Post(base+"/api/v1/webhooks/c2s?token="+secret, "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
				return nil
			}
			if resp.StatusCode < 500 {
				return fmt.Errorf("webhook of %s answered %d", l.ID, resp.StatusCode)
			}
		}
		retried.Add(1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook of %s never accepted", l.ID)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
