package e2e

// The reliability suite: the delivery guarantees against upstreams that
// lose replies, a burst far beyond the C2S budget, a long Work API credits
// outage, and processes SIGKILLed mid-flight while NATS restarts. Each
// scenario runs real service processes (1 ingest, 2 resolvers, 2 enrichers,
// 2 notifiers) on their own Postgres database, NATS server and simulators,
// and checks the invariants of checkInvariants plus its own. See
// docs/RELIABILITY.md. The default form fits CI (a few minutes in all, the
// scenarios side by side); LEADFLOW_RELIABILITY=long runs the long form
// (go test ./e2e -run TestReliability -v -timeout 60m).

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/sim"
)

// The scenarios run in two lanes of about the same length, side by side
// (go test runs two parallel tests at once on a 2-core machine): the
// upstreams misbehaving, and outages (processes, NATS, credits). Within a
// lane they run one after the other.

// TestReliabilityUpstreams: lost replies on every upstream, then a burst
// far beyond the C2S budget.
func TestReliabilityUpstreams(t *testing.T) {
	reliabilitySuite(t)
	t.Run("LostReplies", testLostReplies)
	t.Run("Burst", testBurst)
}

// TestReliabilityOutages: processes SIGKILLed and NATS restarted under a
// steady flow, then a Work API credits outage.
func TestReliabilityOutages(t *testing.T) {
	reliabilitySuite(t)
	t.Run("KillsAndNATSRestart", testKillsAndNATSRestart)
	t.Run("CreditsOutage", testCreditsOutage)
}

// testBurst (TestReliabilityUpstreams/Burst): 100+ leads at once against a
// C2S token allowed 60 requests a minute with a burst of 5, shared by direct
// C2S and the gateway (one bucket in the simulator), with two notifier
// replicas. Every lead gets
// its one message, nothing is dead-lettered, 429s stay rare, and waiting for
// the budget spends no JetStream delivery.
func testBurst(t *testing.T) {
	const perMinute, burst = 60, 5
	n := size(100, 500)
	c := newCluster(t, clusterSpec{
		Name:    "burst beyond the shared C2S budget",
		Gateway: true,
		Sim:     sim.Config{Seed: 202, People: size(400, 1500), Limits: sim.LimitSet{C2S: sim.PerMinute(perMinute, burst)}},
		Env: map[string]string{
			// The token's budget: the simulator's own figures. Once rate
			// budgets are shared across processes (pipeline.rate_budgets),
			// it binds every process and both routes together.
			"C2S_RATE": "1", "C2S_BURST": strconv.Itoa(burst),
			// Without a shared budget each process paces the gateway route
			// on its own: half the token's budget for each of the two
			// notifiers. (Ignored once budgets are shared.)
			"C2S_GATEWAY_RATE": "0.5", "C2S_GATEWAY_BURST": "2",
			"DIRETRIX_RATE": "20", "DIRETRIX_BURST": "20", "WORK_API_RATE": "20", "WORK_API_BURST": "5",
		},
	})
	leads := c.pickLeads(0, n, withContacts)
	c.sendAll(leads)
	c.waitSettled(leads, size(5*time.Minute, 15*time.Minute))

	r := c.checkInvariants(leads)
	if r.Messages != n {
		t.Errorf("%d messages for %d leads", r.Messages, n)
	}
	if r.DeadLetters != 0 || r.Uncertain != 0 {
		t.Errorf("dead letters %d, uncertain %d: a burst must only wait", r.DeadLetters, r.Uncertain)
	}
	for name, k := range r.Redelivered {
		if k != 0 {
			t.Errorf("consumer %s redelivered %d times: waiting for the budget must spend no delivery", name, k)
		}
	}
	if limit := max(3, n/20); r.RateLimited > int64(limit) {
		t.Errorf("the C2S bucket answered %d 429s for %d messages (more than %d): the product does not keep to the budget", r.RateLimited, n, limit)
	}
	lim := c.sims.C2S.Limiter()
	token := c.sims.Config.C2SToken
	if got := lim.AdmittedCount(token); got < int64(n) {
		t.Errorf("the C2S bucket admitted %d requests for %d messages", got, n)
	}
	var windows []string
	for _, w := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		got := lim.MaxAdmittedIn(token, w)
		allowed := burst + int(perMinute*w/time.Minute)
		if got > allowed {
			t.Errorf("C2S admitted %d requests within %s, the bucket allows %d", got, w, allowed)
		}
		windows = append(windows, fmt.Sprintf("%d in %s (bucket allows %d)", got, w, allowed))
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("C2S bucket %d/min, burst %d, one bucket for the token (direct and gateway); product: %s; messages by route: %s", perMinute, burst, c.envSummary("C2S_"), c.routes(leads)),
		"most C2S requests admitted in any window: "+strings.Join(windows, ", "),
		fmt.Sprintf("C2S requests admitted %d, refused 429 %d", lim.AdmittedCount(token), lim.Rejected(token)))
	c.printReport(r)
}

// testLostReplies (TestReliabilityUpstreams/LostReplies): Diretrix, the Work API, C2S direct and the
// gateway each lose a share of replies after the effect (502, a hang past
// the client's short timeout, a dropped connection). Wave A: the lead lists
// its messages, so every lost post is checked, found and never posted
// again. Wave B: the lead lists no messages (as the confirmed C2S document),
// so a lost post ends uncertain (ledger, trace, dead letter) and an operator
// confirms it with leadflowctl.
func testLostReplies(t *testing.T) {
	nA, nB := size(40, 200), size(12, 60)
	c := newCluster(t, clusterSpec{
		Name:    "lost replies on every upstream",
		Gateway: true,
		Sim:     sim.Config{Seed: 101, People: size(300, 900)},
		Env: map[string]string{
			// A reply held back is given up on quickly.
			"C2S_TIMEOUT": "2s", "C2S_GATEWAY_TIMEOUT": "2s", "DIRETRIX_TIMEOUT": "2s", "WORK_API_TIMEOUT": "2s",
			// A gateway 503 goes direct at once, so both routes post.
			"C2S_GATEWAY_MAX_RETRIES": "0",
			// No rate limit in the simulators here: the pace must not hide the faults.
			"C2S_RATE": "20", "C2S_BURST": "20", "C2S_GATEWAY_RATE": "20", "C2S_GATEWAY_BURST": "20",
			"DIRETRIX_RATE": "20", "DIRETRIX_BURST": "20", "WORK_API_RATE": "4", "WORK_API_BURST": "2",
		},
	})
	lost := func(r502, hang, drop float64) sim.Faults {
		return sim.Faults{LostReply502Rate: r502, LostReplyHangRate: hang, LostReplyDropRate: drop}
	}
	c.sims.Diretrix.SetFaults(lost(0.04, 0.03, 0.03))
	c.sims.WorkAPI.SetFaults(lost(0.03, 0.02, 0.03))
	c.sims.C2S.SetFaults(lost(0.04, 0.03, 0.04))
	gw := lost(0.04, 0.03, 0.04)
	gw.ErrorRate, gw.ErrorStatus = 0.25, http.StatusServiceUnavailable // refused before forwarding: direct takes it
	c.sims.Gateway.SetFaults(gw)

	// Wave A: lost posts are found on the lead.
	waveA := c.pickLeads(0, nA, nil)
	c.sendAll(waveA)
	c.waitSettled(waveA, size(4*time.Minute, 12*time.Minute))
	lostA := c.leadsWithLostPost()
	foundA := c.notifiedOutcomes("already_sent")
	for _, l := range waveA {
		if lostA[l.ID] != foundA[l.ID] {
			t.Errorf("wave A lead %s: lost post %v, found on the lead %v: every lost post must be checked and found, nothing else", l.ID, lostA[l.ID], foundA[l.ID])
		}
	}
	dls := c.deadLetters()
	for _, l := range waveA {
		for _, dl := range dls[l.ID] {
			if !strings.Contains(dl.Reason, "paid attempts exhausted") {
				t.Errorf("wave A lead %s dead-lettered (%s): %s", l.ID, dl.Stage, dl.Reason)
			}
		}
	}

	// Wave B: the lead document lists no messages, and posts lose more replies.
	c.sims.C2S.SetFaults(sim.Faults{LeadMessagesHidden: true, LostReply502Rate: 0.10, LostReplyHangRate: 0.08, LostReplyDropRate: 0.10})
	gw = lost(0.10, 0.08, 0.10)
	gw.ErrorRate, gw.ErrorStatus = 0.25, http.StatusServiceUnavailable
	c.sims.Gateway.SetFaults(gw)
	waveB := c.pickLeads(nA, nB, nil)
	c.sendAll(waveB)
	c.waitSettled(waveB, size(4*time.Minute, 12*time.Minute))
	lostB := c.leadsWithLostPost()
	uncertainB := c.ledgerStatuses("uncertain")
	dls = c.deadLetters()
	uncertain := 0
	for _, l := range waveB {
		if lostB[l.ID] != uncertainB[l.ID] {
			t.Errorf("wave B lead %s: lost post %v, uncertain %v: a lost post on a lead without messages must end uncertain, nothing else", l.ID, lostB[l.ID], uncertainB[l.ID])
		}
		if !uncertainB[l.ID] {
			continue
		}
		uncertain++
		if n := len(c.sims.C2S.Messages(l.ID)); n != 1 {
			t.Errorf("uncertain lead %s has %d messages, want the 1 whose reply was lost", l.ID, n)
		}
		found := false
		for _, dl := range dls[l.ID] {
			found = found || (strings.Contains(dl.Stage, "notifier") && strings.Contains(dl.Reason, "uncertain delivery"))
		}
		if !found {
			t.Errorf("uncertain lead %s has no dead letter with the reason \"uncertain delivery\"", l.ID)
		}
		if st := c.runStatus(l.ID); st != "uncertain" {
			t.Errorf("uncertain lead %s: run %q, want uncertain in the trace", l.ID, st)
		}
	}
	// The metric operators alert on: counted once per uncertain delivery,
	// and open (read from the ledger) on every notifier.
	var counted float64
	for _, v := range c.metric("notifier", "leadflow_uncertain_deliveries_total") {
		counted += v
	}
	if int(counted) != uncertain {
		t.Errorf("leadflow_uncertain_deliveries_total = %v over the notifiers, %d deliveries are uncertain", counted, uncertain)
	}
	for _, v := range c.metric("notifier", "leadflow_uncertain_deliveries_open") {
		if int(v) != uncertain {
			t.Errorf("leadflow_uncertain_deliveries_open = %v, %d deliveries wait for an operator", v, uncertain)
		}
	}
	all := append(append([]sim.Lead{}, waveA...), waveB...)
	// The figures before the operator steps in.
	before := c.checkInvariants(all)
	reasonsBefore := deadLetterReasons(c.deadLetters())

	// The operator: the message is on each lead, so confirm; nothing is posted.
	confirmed, reposted := c.resolveUncertain()
	if confirmed+reposted != uncertain {
		t.Errorf("the operator resolved %d+%d deliveries, %d were uncertain", confirmed, reposted, uncertain)
	}
	var resolved []string
	for _, l := range waveB {
		if uncertainB[l.ID] {
			resolved = append(resolved, l.ID)
		}
	}
	c.waitNotified(resolved, time.Minute)
	r := c.checkInvariants(all)
	if left := c.ledgerStatuses("uncertain"); len(left) != 0 {
		t.Errorf("%d deliveries still uncertain after the operator", len(left))
	}
	for _, v := range c.metric("notifier", "leadflow_uncertain_deliveries_open") {
		if v != 0 {
			t.Errorf("leadflow_uncertain_deliveries_open = %v after the operator resolved every delivery", v)
		}
	}
	for _, id := range resolved {
		if n := len(c.deadLetters()[id]); n != 0 {
			t.Errorf("lead %s keeps %d dead letters after its confirm", id, n)
		}
	}
	r.Uncertain, r.DeadLetters = before.Uncertain, before.DeadLetters
	r.Notes = append(r.Notes,
		fmt.Sprintf("wave A (lead lists messages): %d leads, %d lost posts, each found on the lead and not posted again", nA, count(lostA, waveA)),
		fmt.Sprintf("wave B (lead lists no messages): %d leads, %d lost posts, %d ended uncertain (ledger, trace, dead letter), then %d confirmed and %d reposted by the operator", nB, count(lostB, waveB), uncertain, confirmed, reposted),
		fmt.Sprintf("messages by route: %s", c.routes(all)),
		fmt.Sprintf("dead letters before the operator: %v", reasonsBefore))
	c.printReport(r)
}

// testCreditsOutage (TestReliabilityOutages/CreditsOutage): the Work API
// runs out of credits for longer than the enricher's ack wait, so only
// keeping held messages in progress saves their deliveries, and longer than
// the old nak schedule could carry a lead in the long form (its steps total
// about 9 minutes; the long form's outage is 10). The short form shortens
// the clocks: ENRICH_CREDITS_PAUSE=2s, an ack wait of 62 s
// (WORK_API_TIMEOUT=2s, no retry) and a 75 s outage. Leads arriving
// meanwhile are held in progress or left on the server, all enriched and
// notified once credits return, nothing is dead-lettered and no delivery is
// spent.
func testCreditsOutage(t *testing.T) {
	outage := size(75*time.Second, 10*time.Minute)
	n := size(30, 120)
	const enrichers, handlers = 2, 8
	env := map[string]string{
		"ENRICH_CREDITS_PAUSE": size("2s", "30s"),
		"ENRICHER_WORKERS":     strconv.Itoa(handlers),
		"WORK_API_RATE":        "4", "WORK_API_BURST": "2",
		"C2S_RATE": "20", "C2S_BURST": "20", "DIRETRIX_RATE": "20", "DIRETRIX_BURST": "20",
	}
	if !reliabilityLong() {
		// The enricher's ack wait is WORK_API_TIMEOUT x (retries+1) + 1 min.
		env["WORK_API_TIMEOUT"], env["WORK_API_MAX_RETRIES"] = "2s", "0"
	}
	c := newCluster(t, clusterSpec{
		Name: "Work API credits outage",
		Sim:  sim.Config{Seed: 303, People: size(300, 600)},
		Env:  env,
	})
	ackWait := time.Duration(0)
	if info := c.consumerInfo("enricher__leads_resolved"); info != nil {
		ackWait = info.Config.AckWait
	}
	if outage <= ackWait {
		t.Fatalf("the outage (%s) must outlast the enricher's ack wait (%s)", outage, ackWait)
	}
	c.sims.WorkAPI.SetFaults(sim.Faults{OutOfCredits: true})
	outageStart := time.Now()
	leads := c.pickLeads(0, n, nil)
	const waves = 3
	var maxHeld, maxWaiting int
	var firstHeld time.Time
	paused := false
	watch := func(until time.Time) {
		// While credits are out: nothing enriched, nothing dead-lettered,
		// no more messages held than there are handlers, the rest left on
		// the server.
		for time.Now().Before(until) {
			var enriched int
			if err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.lead_stages WHERE stage = 'enriched'`).Scan(&enriched); err != nil {
				t.Fatal(err)
			}
			if enriched != 0 {
				t.Fatalf("%d leads enriched while the Work API had no credits", enriched)
			}
			info := c.consumerInfo("enricher__leads_resolved")
			if info != nil {
				maxHeld = max(maxHeld, info.NumAckPending)
				if info.NumAckPending > 0 && firstHeld.IsZero() {
					firstHeld = time.Now()
				}
				maxWaiting = max(maxWaiting, int(info.NumPending))
				paused = paused || info.Paused
				if info.NumAckPending > enrichers*handlers {
					t.Errorf("the enricher holds %d messages with %d handlers", info.NumAckPending, enrichers*handlers)
				}
				if info.NumRedelivered > 0 {
					t.Errorf("%d enricher messages redelivered during the outage", info.NumRedelivered)
				}
			}
			if d := c.streamCount(events.SubjectDeadLetter); d != 0 {
				t.Fatalf("%d dead letters during the outage", d)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	for i := range waves {
		c.sendAll(leads[i*n/waves : (i+1)*n/waves])
		watch(outageStart.Add(outage * time.Duration(i+1) / waves))
	}
	refused := 0
	for _, req := range c.sims.WorkAPI.Requests() {
		if req.Fault == "out_of_credits" {
			refused++
		}
	}
	c.sims.WorkAPI.ClearFaults()
	creditsBack := time.Now()
	// Nothing is enriched or acked while credits are out, so the first
	// message taken was held from then until now.
	heldFor := creditsBack.Sub(firstHeld)
	if firstHeld.IsZero() || heldFor <= ackWait {
		t.Errorf("no message was held longer than the ack wait (%s; first held %s before credits returned)", ackWait, heldFor)
	}
	c.waitSettled(leads, size(4*time.Minute, 15*time.Minute))
	drained := time.Since(creditsBack)

	r := c.checkInvariants(leads)
	if r.Messages != n {
		t.Errorf("%d messages for %d leads", r.Messages, n)
	}
	if r.DeadLetters != 0 || r.Uncertain != 0 {
		t.Errorf("dead letters %d, uncertain %d: an outage must only wait", r.DeadLetters, r.Uncertain)
	}
	for name, k := range r.Redelivered {
		if k != 0 {
			t.Errorf("consumer %s redelivered %d times: waiting for credits must spend no delivery", name, k)
		}
	}
	if r.ExtraPaid != 0 {
		t.Errorf("%d extra paid calls: a refusal for credits is not paid and must not lead to paying twice", r.ExtraPaid)
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("outage %s (enricher ack wait %s, ENRICH_CREDITS_PAUSE=%s), leads in %d waves during it; %d Work API calls refused for credits", outage, ackWait, c.env["ENRICH_CREDITS_PAUSE"], waves, refused),
		fmt.Sprintf("during the outage the enricher held at most %d messages in progress (%d handlers), the first for %s (ack wait %s) with no redelivery, and left up to %d on the server; consumer pause seen: %v", maxHeld, enrichers*handlers, heldFor.Round(time.Second), ackWait, maxWaiting, paused),
		fmt.Sprintf("all %d leads settled %s after credits returned", n, drained.Round(time.Second)))
	c.printReport(r)
}

// testKillsAndNATSRestart (TestReliabilityOutages/KillsAndNATSRestart): a steady
// flow of leads while a random worker process is SIGKILLed every few
// seconds and started again, and the NATS server is shut down and started
// again once. The upstreams answer slowly (and C2S holds a few replies after
// posting) so that kills land on messages in flight. Held messages come
// back after the ack wait; a notifier killed between its post and its
// record finds the message on the lead and does not post again.
func testKillsAndNATSRestart(t *testing.T) {
	n := size(75, 360)
	every := 330 * time.Millisecond // ~3 leads a second
	c := newCluster(t, clusterSpec{
		Name: "SIGKILL mid-flight and a NATS restart",
		Sim:  sim.Config{Seed: 404, People: size(300, 900)},
		Env: map[string]string{
			"C2S_TIMEOUT": "3s",
			// The enricher's ack wait is WORK_API_TIMEOUT x (retries+1) + 1 min
			// (2.5 min by default): what a killed enricher's message waits.
			"WORK_API_TIMEOUT": "5s",
			"C2S_RATE":         "20", "C2S_BURST": "20", "DIRETRIX_RATE": "20", "DIRETRIX_BURST": "20",
			"WORK_API_RATE": "4", "WORK_API_BURST": "2",
		},
	})
	c.sims.Diretrix.SetFaults(sim.Faults{LatencyMin: 50 * time.Millisecond, LatencyMax: 400 * time.Millisecond})
	c.sims.WorkAPI.SetFaults(sim.Faults{LatencyMin: 200 * time.Millisecond, LatencyMax: 900 * time.Millisecond})
	c.sims.C2S.SetFaults(sim.Faults{LatencyMin: 100 * time.Millisecond, LatencyMax: 600 * time.Millisecond, LostReplyHangRate: 0.05})
	leads := c.pickLeads(0, n, nil)
	stop, done := make(chan struct{}), make(chan struct{})
	go c.killer(404, 3*time.Second, stop, done)
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	natsAt := n * 2 / 5
	for i, l := range leads {
		if i == natsAt {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.restartNATS(3 * time.Second); err != nil {
					errs <- fmt.Errorf("restart NATS: %w", err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.sendLead(l); err != nil {
				errs <- err
			}
		}()
		time.Sleep(every) // the flow's pace
	}
	wg.Wait()
	close(stop)
	<-done
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitSettled(leads, size(6*time.Minute, 12*time.Minute))

	r := c.checkInvariants(leads)
	if r.NATSRestarts != 1 || r.Kills < 3 {
		t.Errorf("%d kills and %d NATS restarts: the scenario did not happen", r.Kills, r.NATSRestarts)
	}
	// A notifier killed between recording a post as started and sending
	// it leaves a lead whose document shows no messages: the contract says
	// never post blind, so such a delivery ends uncertain (visible in the
	// ledger and the dead letters), and only so.
	if r.DeadLetters != r.Uncertain {
		t.Errorf("dead letters other than uncertain deliveries: %v", deadLetterReasons(c.deadLetters()))
	}
	if r.Messages+r.Uncertain != n {
		t.Errorf("%d messages and %d uncertain deliveries for %d leads", r.Messages, r.Uncertain, n)
	}
	r.Notes = append(r.Notes,
		fmt.Sprintf("a random worker SIGKILLed every 3 s and started again after 0.2-1 s (%s); NATS away 3 s after lead %d; %d leads at ~%d/s", c.killSummary(), natsAt, n, int(time.Second/every)),
		fmt.Sprintf("runs found already posted after a crash (already_sent): %d; Work API attempts left started by a killed enricher: %d", len(c.notifiedOutcomes("already_sent")), c.crashedAttempts()),
		"slowest lead: "+c.describeLead(r.SlowestLead))
	c.printReport(r)
}

// leadsWithLostPost returns the leads on which a message post lost its
// reply (C2S direct, C2S behind the gateway, or the gateway itself).
func (c *cluster) leadsWithLostPost() map[string]bool {
	out := map[string]bool{}
	for _, u := range []sim.Controls{c.sims.C2S, c.sims.Gateway} {
		for _, r := range u.Requests() {
			if r.Method != http.MethodPost || !strings.HasPrefix(r.Fault, "lost_") {
				continue
			}
			// /integration/leads/{id}/create_message or /leads/{id}/messages
			parts := strings.Split(strings.TrimPrefix(r.Path, "/integration"), "/")
			if len(parts) >= 3 && parts[1] == "leads" {
				out[parts[2]] = true
			}
		}
	}
	return out
}

// notifiedOutcomes returns the leads whose notified stage has outcome.
func (c *cluster) notifiedOutcomes(outcome string) map[string]bool {
	return c.leadSet(`SELECT lead_id FROM pipeline.lead_stages WHERE stage = 'notified' AND outcome = $1`, outcome)
}

// ledgerStatuses returns the leads with a delivery in status.
func (c *cluster) ledgerStatuses(status string) map[string]bool {
	return c.leadSet(`SELECT lead_id FROM pipeline.notifications WHERE status = $1`, status)
}

// leadSet runs a query returning lead ids and collects them.
func (c *cluster) leadSet(sql string, arg any) map[string]bool {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), sql, arg)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		out[id] = true
	}
	return out
}

func (c *cluster) runStatus(lead string) string {
	var st string
	_ = c.pool.QueryRow(context.Background(), `SELECT status FROM pipeline.lead_runs WHERE lead_id = $1`, lead).Scan(&st)
	return st
}

func (c *cluster) crashedAttempts() int {
	var n int
	_ = c.pool.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.workapi_attempts WHERE status = 'started'`).Scan(&n)
	return n
}

// routes counts the suite's messages by the route that took them.
func (c *cluster) routes(leads []sim.Lead) string {
	by := map[string]int{}
	for _, l := range leads {
		for _, m := range c.sims.C2S.Messages(l.ID) {
			by[m.Route]++
		}
	}
	return fmt.Sprintf("gateway %d, direct %d", by["gateway"], by["direct"])
}

func (c *cluster) consumerInfo(name string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, events.StreamName, name)
	if err != nil {
		return nil
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}

func (c *cluster) streamCount(subject string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := c.js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0
	}
	return int(info.State.Subjects[subject])
}

// envSummary lists the settings that start with prefix and says whether
// the processes drew from shared rate budgets.
func (c *cluster) envSummary(prefix string) string {
	var parts []string
	for _, k := range sortedKeys(c.env) {
		if strings.HasPrefix(k, prefix) && !strings.HasSuffix(k, "_URL") && k != "C2S_TOKEN" {
			parts = append(parts, k+"="+c.env[k])
		}
	}
	return strings.Join(parts, " ") + " (" + c.budgets() + ")"
}

func count(set map[string]bool, leads []sim.Lead) int {
	n := 0
	for _, l := range leads {
		if set[l.ID] {
			n++
		}
	}
	return n
}
