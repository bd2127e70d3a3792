package messaging

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/logging"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// BenchmarkHop measures one pipeline hop: a delivery is decoded, the next
// event is published (and its JetStream ack awaited), then the delivery is
// acked. "product" goes through this package (the pull subscriber,
// watermill's router, the middleware chain, the Publisher); "plain" does the
// same with nats.go's jetstream Consume and Publish, as cmd/bench's floor
// does. Both run 64 handlers against an embedded server in this process, so
// cpu-us/op (the process's CPU per hop, server included) compares the two;
// the difference is the messaging layer's.
//
//	go test ./pkg/backbone/messaging -run '^$' -bench BenchmarkHop -benchtime 20000x
func BenchmarkHop(b *testing.B) {
	b.Run("product", func(b *testing.B) { benchHop(b, productHop) })
	b.Run("plain", func(b *testing.B) { benchHop(b, plainHop) })
}

// A hop runner consumes n lead.received events and publishes one
// lead.resolved for each; it returns once all n are acked.
type hopRunner func(b *testing.B, nc *nats.Conn, js jetstream.JetStream, n int) (run func(), stop func())

func benchHop(b *testing.B, runner hopRunner) {
	r := newRig(b)
	ctx := context.Background()
	// The backlog, published before the clock starts.
	for i := range b.N {
		env, err := events.NewReceived(fmt.Sprintf("lead-%08d", i), events.SourceWebhook, "k", events.LeadReceived{Action: "on_create_lead"})
		if err != nil {
			b.Fatal(err)
		}
		if err := r.pub.Publish(ctx, env); err != nil {
			b.Fatal(err)
		}
	}
	run, stop := runner(b, r.nc, r.js, b.N)
	defer stop()
	cpu0, t0 := testinfra.SelfCPU(), time.Now()
	b.ResetTimer()
	run()
	b.StopTimer()
	cpu := testinfra.SelfCPU() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "hops/s")
}

// next is the handler's work: decode the delivery, build lead.resolved.
func next(data []byte) (events.Envelope, error) {
	var in events.LeadReceived
	env, err := events.Decode(data, events.TypeReceived, &in)
	if err != nil {
		return events.Envelope{}, err
	}
	return events.New(events.TypeResolved, &env, events.LeadResolved{Phone: "5511999990000",
		Persons: []events.ResolvedPerson{{CPF: "00000000000", Role: events.RolePhone}}})
}

func productHop(b *testing.B, nc *nats.Conn, js jetstream.JetStream, n int) (func(), func()) {
	pub, err := NewPublisher(nc, nil)
	if err != nil {
		b.Fatal(err)
	}
	router, err := NewRouter(nc, js, pub, "bench", logging.New("bench", "error", io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	spec := DefaultConsumerSpec("bench", events.SubjectReceived)
	spec.Workers = 64
	err = router.Handle(context.Background(), spec, func(ctx context.Context, msg *message.Message) error {
		out, err := next(msg.Payload)
		if err != nil {
			return err
		}
		if err := pub.Publish(ctx, out); err != nil {
			return err
		}
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return func() {
			go func() { _ = router.Run(ctx) }()
			<-router.Running()
			<-done
		}, func() {
			cancel()
			_ = router.Close()
		}
}

func plainHop(b *testing.B, _ *nats.Conn, js jetstream.JetStream, n int) (func(), func()) {
	ctx := context.Background()
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{Durable: "plain",
		FilterSubject: events.SubjectReceived, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 512})
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	var cc jetstream.ConsumeContext
	return func() {
			sem := make(chan struct{}, 64)
			cc, err = cons.Consume(func(m jetstream.Msg) {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					out, err := next(m.Data())
					if err != nil {
						b.Error(err)
						return
					}
					body, err := events.Marshal(out)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := js.Publish(ctx, events.SubjectResolved, body, jetstream.WithMsgID(out.MsgID())); err != nil {
						b.Error(err)
						return
					}
					_ = m.Ack()
					if handled.Add(1) == int64(n) {
						close(done)
					}
				}()
			})
			if err != nil {
				b.Fatal(err)
			}
			<-done
		}, func() {
			if cc != nil {
				cc.Stop()
			}
		}
}
