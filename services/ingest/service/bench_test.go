package service_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWebhook measures webhooks accepted per second, each answered 202
// only after Postgres took the receipt and JetStream acknowledged the
// publish, with parallel clients and distinct lead ids, and reports the p99
// latency of an accepted webhook.
func BenchmarkWebhook(b *testing.B) {
	in := startIngest(b, nil)
	hook := in.URL + "/api/v1/webhooks/c2s?token=" + secret
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(8) // 8 clients per CPU: ingest waits on I/O, not CPU
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			id := fmt.Sprintf("bench%s%016d", run, seq.Add(1))
			body := []byte(`{"id":"` + id + `","hook_action":"on_create_lead","attributes":{"updated_at":"2025-11-21T13:30:00Z",` +
				`"customer":{"name":"Cliente Teste","phone":"5511900000000","email":"cliente@example.com"}}}`)
			t0 := time.Now()
			resp, err := client.Post(hook, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "webhooks/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	if got := streamMsgs(b, in.JS); got < uint64(len(lat)) {
		b.Fatalf("%d webhooks accepted but the stream holds %d events", len(lat), got)
	}
}
