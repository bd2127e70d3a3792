// Package messaging is the JetStream backbone shared by every service:
// stream and consumer provisioning (nats.go jetstream), a watermill publisher
// and router over watermill-nats/v2, the one middleware chain, and dead
// letters.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/leadflow/leadflow/pkg/backbone/events"
)

// Connect dials NATS (comma-separated URLs) and keeps reconnecting forever:
// a broker restart must not kill a service. extra carries authentication
// and TLS (NATSAuth.Options).
func Connect(urls, name string, log zerolog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	return nats.Connect(urls, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info().Msg("nats reconnected") }),
	}, extra...)...)
}

// StreamSettings are the stream's retention choices.
type StreamSettings struct {
	// MaxAge keeps events replayable for this long (Limits retention).
	MaxAge time.Duration
	// Duplicates is the Nats-Msg-Id dedupe window. Postgres idempotency
	// covers everything older.
	Duplicates time.Duration
	// Replicas is 1 on a single server, 3 in a cluster.
	Replicas int
}

// DefaultStreamSettings: 30 days of replay, a 10-minute dedupe window (longer
// than C2S webhook retries and the Make dedupe window).
func DefaultStreamSettings() StreamSettings {
	return StreamSettings{MaxAge: 30 * 24 * time.Hour, Duplicates: 10 * time.Minute, Replicas: 1}
}

// EnsureStream creates or updates the LEADS stream. It is idempotent and
// safe when several services start at once.
func EnsureStream(ctx context.Context, js jetstream.JetStream, s StreamSettings) (jetstream.Stream, error) {
	if s.Replicas <= 0 {
		s.Replicas = 1
	}
	cfg := jetstream.StreamConfig{
		Name:        events.StreamName,
		Description: "Lead pipeline events; replayable for MaxAge",
		Subjects:    []string{events.StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.MaxAge,
		Duplicates:  s.Duplicates,
		Replicas:    s.Replicas,
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	if err := EnsureExhaustedStream(ctx, js, s.Replicas); err != nil {
		return nil, err
	}
	return st, nil
}

// ConsumerSpec is one durable consumer: one per (service, subject).
//
// JetStream uses BackOff[n-1] as the ack wait of the n-th delivery (it
// replaces AckWait), so every BackOff step must outlast the slowest handler
// or a message is redelivered while it is still being handled. Naks, which
// the handler chooses, follow the shorter NakDelays instead.
type ConsumerSpec struct {
	Service       string
	Subject       string
	AckWait       time.Duration   // longest a handler may take
	MaxDeliver    int             // then the message is dead-lettered
	BackOff       []time.Duration // server-side redelivery after an ack timeout
	NakDelays     []time.Duration // redelivery after a nak (transient failure)
	MaxAckPending int
	Workers       int // concurrent handlers in this process
	// MaxHold is how long a handler may hold a message while it is kept in
	// progress (waiting for a rate budget, credits or a slow upstream);
	// past it the message is no longer kept alive and comes back after the
	// ack wait, as from a hung or dead process.
	MaxHold  time.Duration
	Replicas int // consumer replicas; 0 = as the stream (CONSUMER_REPLICAS)
}

// DefaultConsumerSpec returns the settings every stage starts from.
func DefaultConsumerSpec(service, subject string) ConsumerSpec {
	return ConsumerSpec{
		Service:       service,
		Subject:       subject,
		AckWait:       time.Minute,
		MaxDeliver:    8,
		BackOff:       []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute},
		NakDelays:     []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute},
		MaxAckPending: 512,
		Workers:       32,
		MaxHold:       12 * time.Hour,
	}
}

// WithAckWait raises AckWait and every BackOff step to at least d, for
// stages whose handlers may take long (a paced, paid upstream).
func (c ConsumerSpec) WithAckWait(d time.Duration) ConsumerSpec {
	c.AckWait = max(c.AckWait, d)
	backoff := make([]time.Duration, len(c.BackOff))
	for i, b := range c.BackOff {
		backoff[i] = max(b, d)
	}
	c.BackOff = backoff
	return c
}

// DurableName is the consumer name for (service, subject). JetStream names
// may not contain dots.
func DurableName(service, subject string) string {
	r := strings.NewReplacer(".", "_", "*", "any", ">", "all", " ", "_")
	return r.Replace(service) + "__" + r.Replace(subject)
}

// Validate checks the spec before it reaches the server.
func (c ConsumerSpec) Validate() error {
	var errs []error
	if c.Service == "" || c.Subject == "" {
		errs = append(errs, errors.New("service and subject are required"))
	}
	if c.MaxDeliver <= len(c.BackOff) {
		errs = append(errs, fmt.Errorf("MaxDeliver (%d) must exceed the BackOff steps (%d)", c.MaxDeliver, len(c.BackOff)))
	}
	if len(c.BackOff) > 0 && c.BackOff[0] < c.AckWait {
		errs = append(errs, fmt.Errorf("BackOff[0] (%s) replaces AckWait (%s) on the server and must not be shorter", c.BackOff[0], c.AckWait))
	}
	if c.AckWait <= 0 || c.MaxAckPending <= 0 || c.Workers <= 0 {
		errs = append(errs, errors.New("AckWait, MaxAckPending and Workers must be positive"))
	}
	return errors.Join(errs...)
}

// consumerConfig is spec as the server holds it: every delivery setting
// (AckWait, MaxDeliver, BackOff, MaxAckPending) lives there, so a slow or
// dead process cannot change them.
func consumerConfig(spec ConsumerSpec) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       DurableName(spec.Service, spec.Subject),
		Description:   spec.Service + " consuming " + spec.Subject,
		FilterSubject: spec.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		BackOff:       spec.BackOff,
		MaxAckPending: spec.MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
		Replicas:      spec.Replicas,
	}
}

// EnsureConsumer creates or updates the durable pull consumer of spec. The
// replicas of a service share it: each takes a message only when one of
// its handlers is free.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, spec ConsumerSpec) (jetstream.Consumer, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	cfg := consumerConfig(spec)
	c, err := ensurePullConsumer(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", cfg.Durable, err)
	}
	return c, nil
}

// PauseConsumer pauses spec's durable consumer on the server for d: no
// replica is given new messages until then.
func PauseConsumer(ctx context.Context, js jetstream.JetStream, spec ConsumerSpec, d time.Duration) error {
	_, err := js.PauseConsumer(context.WithoutCancel(ctx), events.StreamName, DurableName(spec.Service, spec.Subject), time.Now().Add(d))
	return err
}
