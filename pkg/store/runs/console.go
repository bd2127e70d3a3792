package runs

import (
	"context"
	"strings"
	"time"
)

// The operator's console (services/ingest/ports/console) reads the runs and
// the trace through these queries: counts per stage over recent windows and
// the latest runs with filters. Like the rest of this package they touch no
// personal data.

// StageCounts is how many stage outcomes were recorded since a time.
type StageCounts struct {
	Since      time.Time `json:"since"`
	Received   int       `json:"received"`
	Resolved   int       `json:"resolved"`
	Unresolved int       `json:"unresolved"`
	Enriched   int       `json:"enriched"`
	Notified   int       `json:"notified"`
	Sent       int       `json:"sent"`   // notified with a message posted
	Failed     int       `json:"failed"` // dead-lettered (StageFailed)
}

// CountStages counts the trace steps per stage recorded since each of the
// given times, in the same order. One query, one pass over the oldest
// window (lead_stages_at keeps it to that window).
func (s *Store) CountStages(ctx context.Context, since ...time.Time) ([]StageCounts, error) {
	out := make([]StageCounts, len(since))
	if len(since) == 0 {
		return out, nil
	}
	oldest := since[0]
	for i, t := range since {
		out[i].Since = t
		if t.Before(oldest) {
			oldest = t
		}
	}
	// Received counts the runs started (lead_runs_started keeps it to the
	// window too); trace rows of that stage, kept from before runs held it,
	// are left out so that no run counts twice.
	rows, err := s.pool.Query(ctx, `SELECT w.i, s.stage, s.outcome = 'sent', count(*)
		FROM unnest($1::timestamptz[]) WITH ORDINALITY AS w(since, i)
		JOIN pipeline.lead_stages s ON s.at >= w.since
		WHERE s.at >= $2 AND s.stage <> 'received'
		GROUP BY 1, 2, 3
		UNION ALL
		SELECT w.i, 'received', false, count(*)
		FROM unnest($1::timestamptz[]) WITH ORDINALITY AS w(since, i)
		JOIN pipeline.lead_runs r ON r.started_at >= w.since
		WHERE r.started_at >= $2
		GROUP BY 1`, since, oldest)
	if err != nil {
		return nil, dbErr("runs.count", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			i     int
			stage string
			sent  bool
			n     int
		)
		if err := rows.Scan(&i, &stage, &sent, &n); err != nil {
			return nil, dbErr("runs.count", err)
		}
		c := &out[i-1]
		switch stage {
		case StageReceived:
			c.Received += n
		case StageResolved:
			c.Resolved += n
		case StageUnresolved:
			c.Unresolved += n
		case StageEnriched:
			c.Enriched += n
		case StageNotified:
			c.Notified += n
			if sent {
				c.Sent += n
			}
		case StageFailed:
			c.Failed += n
		}
	}
	return out, dbErr("runs.count", rows.Err())
}

// RunFilter selects runs; zero fields select everything.
type RunFilter struct {
	Status     string    // a run status (received ... failed)
	Source     string    // c2s_webhook, make, api, replay
	Since      time.Time // started at or after
	Until      time.Time // started before
	LeadPrefix string    // lead ids starting with this
	Limit      int       // 1-500; 0 = 50
}

// LeadRun is a run with its lead.
type LeadRun struct {
	LeadID string `json:"lead_id"`
	Run
}

// RecentRuns lists runs matching f, newest first.
func (s *Store) RecentRuns(ctx context.Context, f RunFilter) ([]LeadRun, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 500)
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	prefix := ""
	if f.LeadPrefix != "" {
		prefix = likeEscaper.Replace(f.LeadPrefix) + "%"
	}
	rows, err := s.pool.Query(ctx, `SELECT lead_id, run_id, source, COALESCE(replay_id, ''), status, cpfs_processed,
			entities_stored, COALESCE(error, ''), started_at, finished_at
		FROM pipeline.lead_runs
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR source = $2)
		  AND ($3::timestamptz IS NULL OR started_at >= $3) AND ($4::timestamptz IS NULL OR started_at < $4)
		  AND ($5 = '' OR lead_id LIKE $5)
		ORDER BY started_at DESC, run_id
		LIMIT $6`, f.Status, f.Source, since, until, prefix, f.Limit)
	if err != nil {
		return nil, dbErr("runs.recent", err)
	}
	defer rows.Close()
	out := []LeadRun{}
	for rows.Next() {
		var r LeadRun
		if err := rows.Scan(&r.LeadID, &r.RunID, &r.Source, &r.ReplayID, &r.Status, &r.CPFsProcessed, &r.EntitiesStored,
			&r.Error, &r.StartedAt, &r.FinishedAt); err != nil {
			return nil, dbErr("runs.recent", err)
		}
		out = append(out, r)
	}
	return out, dbErr("runs.recent", rows.Err())
}

// likeEscaper makes a lead id prefix literal in LIKE ('_' is allowed in ids).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
