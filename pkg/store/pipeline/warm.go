package pipeline

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadflow/leadflow/pkg/store"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

// Warm-up values: a lead and contacts no C2S lead has, and store.WarmCPF.
const (
	warmPhone = "5500000000000"
	warmEmail = "warm-up@leadflow.invalid"
)

// WarmResolution is the resolver's store.Warmer: the look-ups, the decided
// outcome's read and the resolution's batch with its trace step.
func WarmResolution(ctx context.Context, tx pgx.Tx) error {
	ids := Identities{Pool: tx}
	env := runs.WarmEnvelope()
	if _, _, _, _, err := ids.KnownBoth(ctx, warmPhone, warmEmail); err != nil {
		return err
	}
	if _, _, err := ids.KnownPhone(ctx, warmPhone); err != nil {
		return err
	}
	if _, _, err := ids.KnownEmail(ctx, warmEmail); err != nil {
		return err
	}
	if _, _, err := ids.DecidedResolution(ctx, env.RunID); err != nil {
		return err
	}
	learnt := []Learnt{{Kind: "phone", Value: warmPhone, CPF: store.WarmCPF, Source: "diretrix"},
		{Kind: "email", Value: warmEmail, CPF: store.WarmCPF, Source: "diretrix"}}
	return ids.SaveResolution(ctx, env, learnt, warmPhone, warmEmail,
		runs.Outcome{Stage: runs.StageResolved, Outcome: "warm-up", Detail: map[string]any{"warm_up": true}})
}

// Warm is the paid-call claim's store.Warmer: the stored read, the claim
// (lock, cap and attempt), the payload's store and an attempt's end. It
// pays nothing: no upstream is called.
func (p *Payloads) Warm(ctx context.Context, tx pgx.Tx) error {
	cpf, reuse := store.WarmCPF, Reuse{MaxAge: 24 * time.Hour}
	if _, _, err := p.stored(ctx, tx, cpf, reuse); err != nil {
		return err
	}
	lockKey := "workapi:" + cpf
	var row storedRow
	var charged int
	var id *int64
	b := &pgx.Batch{}
	b.Queue(lockSQL, lockKey)
	b.Queue(claimSQL, p.claimArgs(cpf, reuse)...).QueryRow(func(r pgx.Row) error {
		return r.Scan(&row.raw, &row.payloadOK, &row.nobody, &row.nobodyOK, &row.payloadNew, &charged, &id)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	attempt := int64(0)
	if id != nil {
		attempt = *id
	}
	b = &pgx.Batch{}
	b.Queue(storePayloadSQL, cpf, []byte(`{}`), attempt, AttemptAnswered)
	b.Queue(finishSQL, attempt, AttemptNotCharged, "warm-up")
	b.Queue(unlockSQL, lockKey)
	return tx.SendBatch(ctx, b).Close()
}
