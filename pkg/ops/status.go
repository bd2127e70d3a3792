package ops

import (
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/lead"
	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/ledger"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// StreamStatus is the stream's size and span.
type StreamStatus struct {
	Name      string            `json:"name"`
	Messages  uint64            `json:"messages"`
	Bytes     uint64            `json:"bytes"`
	FirstSeq  uint64            `json:"first_seq"`
	LastSeq   uint64            `json:"last_seq"`
	FirstTime time.Time         `json:"first_time"`
	LastTime  time.Time         `json:"last_time"`
	Subjects  map[string]uint64 `json:"subjects"`
}

// ConsumerStatus is one durable consumer: what it has not done yet.
type ConsumerStatus struct {
	Name        string `json:"name"`
	Subject     string `json:"subject"`
	Pending     uint64 `json:"pending"`     // not yet delivered
	AckPending  int    `json:"ack_pending"` // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"`
	Paused      bool   `json:"paused,omitempty"`
	// OldestAge is the age of the oldest message it has not acknowledged.
	OldestAge time.Duration `json:"oldest_age_ns,omitempty"`
}

// Status is what an on-call person needs first.
type Status struct {
	Stream         StreamStatus     `json:"stream"`
	Consumers      []ConsumerStatus `json:"consumers"`
	DeadLetters    uint64           `json:"dead_letters"`
	OldestDeadAge  time.Duration    `json:"oldest_dead_letter_age_ns,omitempty"`
	OldestLeadAge  time.Duration    `json:"oldest_pending_age_ns,omitempty"` // max over consumers
	UnfinishedRuns *int             `json:"unfinished_runs,omitempty"`       // with a database
	OldestRunAge   time.Duration    `json:"oldest_unfinished_run_age_ns,omitempty"`
	// UncertainDeliveries waiting for an operator (leadflowctl uncertain
	// list), with a database.
	UncertainDeliveries *int `json:"uncertain_deliveries,omitempty"`
}

// Status reads the stream, its durable consumers and the dead letters.
func (o *Ops) Status(ctx context.Context) (*Status, error) {
	st, err := o.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.StreamSubjects))
	if err != nil {
		return nil, failure.Transient("ops.status", err)
	}
	now := o.now()
	s := &Status{Stream: StreamStatus{
		Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		FirstTime: info.State.FirstTime, LastTime: info.State.LastTime, Subjects: info.State.Subjects,
	}, Consumers: []ConsumerStatus{}}
	s.DeadLetters = info.State.Subjects[events.SubjectDeadLetter]
	if s.DeadLetters > 0 {
		if m, err := st.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(events.SubjectDeadLetter)); err == nil {
			s.OldestDeadAge = now.Sub(m.Time)
		}
	}
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			continue // ordered consumers of other operators
		}
		c := ConsumerStatus{Name: ci.Name, Subject: ci.Config.FilterSubject, Pending: ci.NumPending,
			AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered, Paused: ci.Paused}
		if c.Pending > 0 || c.AckPending > 0 {
			// The first unacknowledged message follows the ack floor.
			opts := []jetstream.GetMsgOpt{}
			if c.Subject != "" {
				opts = append(opts, jetstream.WithGetMsgSubject(c.Subject))
			}
			if m, err := st.GetMsg(ctx, ci.AckFloor.Stream+1, opts...); err == nil {
				c.OldestAge = now.Sub(m.Time)
				s.OldestLeadAge = max(s.OldestLeadAge, c.OldestAge)
			}
		}
		s.Consumers = append(s.Consumers, c)
	}
	if err := lister.Err(); err != nil {
		return nil, failure.Transient("ops.status", err)
	}
	slices.SortFunc(s.Consumers, func(a, b ConsumerStatus) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	if o.Pool != nil {
		var n int
		var oldest *time.Time
		err := o.Pool.QueryRow(ctx, `SELECT count(*), min(started_at) FROM pipeline.lead_runs WHERE finished_at IS NULL`).Scan(&n, &oldest)
		if err != nil {
			return nil, store.Classify("ops.status", err)
		}
		s.UnfinishedRuns = &n
		if oldest != nil {
			s.OldestRunAge = now.Sub(*oldest)
		}
		u, err := ledger.CountUncertain(ctx, o.Pool)
		if err != nil {
			return nil, err
		}
		s.UncertainDeliveries = &u
	}
	return s, nil
}

// Trace returns a lead's trace (the data of GET /api/v1/leads/{id}).
func (o *Ops) Trace(ctx context.Context, leadID string) (*runs.Trace, error) {
	if err := o.needDB("ops.trace"); err != nil {
		return nil, err
	}
	if !lead.ValidID(leadID) {
		return nil, failure.NotFound("ops.trace")
	}
	return runs.New(o.Pool).Trace(ctx, leadID)
}
