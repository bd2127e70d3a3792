package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// stageTimes is where the steady load's time went, read from the product's
// trace: each run's received time, then the time each later stage recorded
// its step. It shows which stage is slow, and whether the slowest leads come
// evenly or in bursts (a stall shared by every lead in flight).
type stageTimes struct {
	resolve, enrich, notify []time.Duration // received → resolved → enriched → notified
	slowest                 int             // the slowest 1 % of leads (received → notified)
	slowSeconds, busiest    int             // how many distinct seconds they arrived in; the most in one
	busiestAt               time.Duration   // that second, from the start of the load
	analyzed                []analyzeRun    // the bench's ANALYZEs, ended from the start of the load
}

// readStageTimes reads the trace of the runs received since since (the
// floor keeps no trace: nil).
func readStageTimes(ctx context.Context, e *env, since time.Time) (*stageTimes, error) {
	e.own.Add(1)
	rows, err := e.pool.Query(ctx, `SELECT r.received_at,
			max(s.at) FILTER (WHERE s.stage = 'resolved'),
			max(s.at) FILTER (WHERE s.stage IN ('enriched', 'unresolved')),
			max(s.at) FILTER (WHERE s.stage = 'notified')
		FROM pipeline.lead_runs r JOIN pipeline.lead_stages s USING (run_id)
		WHERE r.received_at >= $1
		GROUP BY r.run_id, r.received_at`, since)
	if err != nil {
		return nil, fmt.Errorf("stage times: %w", err)
	}
	defer rows.Close()
	type lead struct {
		at    time.Time
		total time.Duration
	}
	var st stageTimes
	var leads []lead
	for rows.Next() {
		var t0 time.Time
		var t1, t2, t3 *time.Time
		if err := rows.Scan(&t0, &t1, &t2, &t3); err != nil {
			return nil, fmt.Errorf("stage times: %w", err)
		}
		if t1 == nil || t2 == nil || t3 == nil {
			continue // a run that ended early (no person): not timed end to end
		}
		st.resolve = append(st.resolve, t1.Sub(t0))
		st.enrich = append(st.enrich, t2.Sub(*t1))
		st.notify = append(st.notify, t3.Sub(*t2))
		leads = append(leads, lead{t0, t3.Sub(t0)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stage times: %w", err)
	}
	if len(leads) == 0 {
		return nil, nil
	}
	slices.SortFunc(leads, func(a, b lead) int { return cmp.Compare(b.total, a.total) })
	st.slowest = max(1, len(leads)/100)
	perSecond := map[int64]int{}
	for _, l := range leads[:st.slowest] {
		perSecond[l.at.Unix()]++
	}
	st.slowSeconds = len(perSecond)
	for sec, n := range perSecond {
		if n > st.busiest {
			st.busiest, st.busiestAt = n, time.Unix(sec, 0).Sub(since.Truncate(time.Second))
		}
	}
	st.analyzed = e.analyzedSince(since)
	return &st, nil
}

// firstLeads reads, from the trace, how long each of the first n leads took
// from webhook received to message posted, in the order they were received
// (0: no message, the lead has nobody behind it). Right after start-up this
// is the cold pipeline's answer to the first sellers; the floor keeps no
// trace (empty).
func firstLeads(ctx context.Context, e *env, n int) ([]time.Duration, error) {
	e.own.Add(1)
	rows, err := e.pool.Query(ctx, `SELECT COALESCE(extract(epoch FROM max(s.at) FILTER (WHERE s.stage = 'notified') - r.received_at), 0)::float8
		FROM pipeline.lead_runs r JOIN pipeline.lead_stages s USING (run_id)
		GROUP BY r.run_id, r.received_at ORDER BY r.received_at LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("first leads: %w", err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var s float64
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	return out, rows.Err()
}
