package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func webhookURL(base string) string { return base + "/api/v1/webhooks/c2s?token=bench" }

// post sends one webhook and reads the whole answer (so the connection is
// reused); only a 202 counts.
func post(client *http.Client, base string, body []byte) (time.Duration, error) {
	t0 := time.Now()
	resp, err := client.Post(webhookURL(base), "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if resp.StatusCode != http.StatusAccepted {
		return d, fmt.Errorf("webhook answered %s, want 202", resp.Status)
	}
	return d, nil
}

// blast posts bodies with n concurrent clients; it returns acked/s and p99 ms.
func blast(base string, bodies [][]byte, n int) (float64, float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	url := webhookURL(base)
	var next atomic.Int64
	var acked atomic.Int64
	lat := make([][]time.Duration, n)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				// Drain the body so the connection is reused (keep-alive).
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					acked.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if int(acked.Load()) != len(bodies) {
		return 0, 0, fmt.Errorf("only %d of %d webhooks were acked with 202", acked.Load(), len(bodies))
	}
	return float64(acked.Load()) / elapsed, ms(pct(all, 99)), nil
}

// oneByOne posts bodies, then fresh, then idle, one at a time, and times
// each: bodies on one client that keeps its connection (as a webhook sender
// would), fresh each on a new TCP connection, idle each after the target sat
// idle for idleFor (as long as before the first), on a new connection.
// Before the first, the client's own code paths are warmed against a
// throwaway local server, so the first webhook's time is the target's cold
// start (and its new connection), not the bench's.
func oneByOne(base string, bodies, fresh, idle [][]byte, idleFor time.Duration) ([]time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	for i := 0; i < 3 && len(bodies) > 0; i++ {
		if _, err := post(client, local.URL, bodies[0]); err != nil {
			local.Close()
			return nil, fmt.Errorf("warming the bench's client: %w", err)
		}
	}
	local.Close()
	client.CloseIdleConnections()
	out := make([]time.Duration, 0, len(bodies)+len(fresh)+len(idle))
	for _, b := range bodies {
		d, err := post(client, base, b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	for i, b := range append(fresh[:len(fresh):len(fresh)], idle...) {
		client.CloseIdleConnections()
		if i >= len(fresh) {
			time.Sleep(idleFor)
		}
		d, err := post(client, base, b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// steadyLoad posts bodies at a fixed rate, open loop: webhook i leaves at
// start + i/rate whatever happened to the earlier ones. It returns when every
// webhook was answered, with each one's send time and answer time.
func steadyLoad(base string, bodies [][]byte, rate float64) (sent []time.Time, answer []time.Duration, achieved float64, err error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 30 * time.Second}
	interval := time.Duration(float64(time.Second) / rate)
	sent, answer = make([]time.Time, len(bodies)), make([]time.Duration, len(bodies))
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := range bodies {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sent[i] = time.Now()
			d, err := post(client, base, bodies[i])
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			answer[i] = d
		}(i)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, nil, 0, err
	}
	if n := len(sent); n > 1 {
		achieved = float64(n-1) / sent[n-1].Sub(sent[0]).Seconds()
	}
	return sent, answer, achieved, nil
}

// pct is the p-th percentile (nearest rank) of ds; ds is not changed.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sampler records each process's peak RSS every 100 ms, and the CPU of the
// database's backends every 500 ms, until stopped.
func sampler(ctx context.Context, e *env, procs []*service, pg *backendCPU) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-t.C:
				for _, s := range procs {
					if kb := rss(s.cmd.Process.Pid); kb > s.peak.Load() {
						s.peak.Store(kb)
					}
				}
				if i%5 == 0 {
					e.sampleBackends(ctx, pg)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// rss reads VmRSS (KiB) from /proc.
func rss(pid int) int64 { return procStatus(pid, "VmRSS:") }

// rssAnon reads RssAnon (KiB): the process's own memory, without the
// binary's file-backed pages (shared and reclaimable).
func rssAnon(pid int) int64 { return procStatus(pid, "RssAnon:") }

// procStatus reads one "<key> <n> kB" line of /proc/<pid>/status.
func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}
