// Package adapters connects the resolver's use case to Postgres, Diretrix
// and C2S.
package adapters

import (
	"context"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/enrichment"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/store/pipeline"
	"github.com/leadflow/leadflow/pkg/store/runs"
	"github.com/leadflow/leadflow/services/resolver/app"
)

// Store writes a resolution: identities Diretrix taught us, the lead's last
// resolved contacts and the trace step, in one batch (pkg/store/pipeline).
type Store struct {
	Identities pipeline.Identities
}

// SaveResolution implements app.Store.
func (s Store) SaveResolution(ctx context.Context, env events.Envelope, r app.Resolution) error {
	var learnt []pipeline.Learnt
	for _, l := range []struct {
		kind string
		enrichment.Lookup
	}{{"phone", r.Phone}, {"email", r.Email}} {
		if l.Source == enrichment.SourceDiretrix {
			learnt = append(learnt, pipeline.Learnt{Kind: l.kind, Value: l.Value, CPF: l.CPF, Source: l.Source})
		}
	}
	stage := runs.StageResolved
	if len(r.Persons) == 0 {
		stage = runs.StageUnresolved
	}
	return s.Identities.SaveResolution(ctx, env, learnt, r.Phone.Value, r.Email.Value,
		runs.Outcome{Stage: stage, Outcome: r.Outcome, Error: r.Reason, Detail: detail(r)})
}

// DecidedResolution implements app.Store.
func (s Store) DecidedResolution(ctx context.Context, runID string) (events.Envelope, bool, error) {
	return s.Identities.DecidedResolution(ctx, runID)
}

// detail is the trace's view: states and sources, CPFs masked.
func detail(r app.Resolution) map[string]any {
	persons := make([]map[string]string, 0, len(r.Persons))
	for _, p := range r.Persons {
		persons = append(persons, map[string]string{"cpf": logging.CPF(p.CPF), "role": string(p.Role),
			"phone_source": p.PhoneSource, "email_source": p.EmailSource})
	}
	return map[string]any{
		"phone":   map[string]string{"state": r.Phone.State, "source": r.Phone.Source},
		"email":   map[string]string{"state": r.Email.State, "source": r.Email.Source},
		"persons": persons,
	}
}
