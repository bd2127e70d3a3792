package stack_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leadflow/leadflow/cmd/stack/stack"
	"github.com/leadflow/leadflow/pkg/contracts"
	"github.com/leadflow/leadflow/pkg/sim"
	"github.com/leadflow/leadflow/pkg/testinfra"
)

// notYetMerged lists metrics of deploy/observability/README.md that other
// branches add; each is skipped here until its branch lands. Keep it short.
var notYetMerged = map[string]string{}

// documented reads the metrics table: name -> label names.
func documented(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testinfra.RepoRoot(), "deploy", "observability", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(leadflow_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[3], -1) {
			labels = append(labels, l[1])
		}
		sort.Strings(labels)
		out[m[1]] = labels
	}
	if len(out) < 20 {
		t.Fatalf("found %d metrics in the README's table", len(out))
	}
	return out
}

// TestEveryDocumentedMetricIsExported starts the product (one instance of
// each service, each serving /metrics on its own private port as it does by
// default in production), sends a lead through, and checks that every
// metric the dashboards and alert rules use is exported by some service,
// with the documented labels.
func TestEveryDocumentedMetricIsExported(t *testing.T) {
	want := documented(t)
	env := map[string]string{"DATABASE_URL": testinfra.NewDatabase(t), "LOG_LEVEL": "warn", "LEADFLOW_USE_GATEWAY": "true"}
	// Shared budgets exist (so their metrics do) but never slow the test.
	for _, p := range []string{"WORK_API", "C2S", "C2S_GATEWAY", "DIRETRIX"} {
		env[p+"_RATE"], env[p+"_BURST"], env[p+"_CONCURRENCY"] = "1000", "1000", "0"
	}
	s, err := stack.Start(context.Background(), stack.Options{Env: env, Sim: sim.Config{Seed: 3, People: 5}, Log: io.Discard, HealthPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)

	// One lead end to end, and its webhook again (a duplicate).
	hook := s.IngestURL + "/api/v1/webhooks/c2s?token=" + s.Env["WEBHOOK_SECRET"]
	for i := 0; i < 2; i++ {
		resp, err := http.Post(hook, "application/json", bytes.NewReader(contracts.Read("c2s/webhook_on_create_lead.json")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	const lead = "5f2c9a7e41b8d3c6a0e1f4b27d9c8e10"
	deadline := time.Now().Add(60 * time.Second)
	for len(s.Sims.C2S.Messages(lead)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lead was not notified")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Over HTTP, as Prometheus scrapes: every instance's private port.
	urls := s.MetricsURLs()
	if len(urls) != len(stack.Services) {
		t.Fatalf("metrics URLs %v, want one per service", urls)
	}
	scraped := map[string]bool{}
	typeLine := regexp.MustCompile(`(?m)^# TYPE (leadflow_[a-z0-9_]+) `)
	for name, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s = %d", name, u, resp.StatusCode)
		}
		for _, m := range typeLine.FindAllStringSubmatch(string(b), -1) {
			scraped[m[1]] = true
		}
	}
	// Labels, from the registries.
	labels := map[string][]string{}
	for _, g := range s.Gatherers() {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if len(mf.GetMetric()) == 0 {
				continue
			}
			var ls []string
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				ls = append(ls, lp.GetName())
			}
			sort.Strings(ls)
			labels[mf.GetName()] = ls
		}
	}
	t.Logf("%d documented metrics, %d leadflow_* families scraped from %d services", len(want), len(scraped), len(urls))
	for name, wantLabels := range want {
		if why, skip := notYetMerged[name]; skip {
			if scraped[name] {
				t.Errorf("%s is exported now: remove it from notYetMerged (%s)", name, why)
			}
			continue
		}
		if !scraped[name] {
			t.Errorf("%s is documented in deploy/observability/README.md but no service exports it", name)
			continue
		}
		if got := labels[name]; !slices.Equal(got, wantLabels) {
			t.Errorf("%s has labels %v, the README documents %v", name, got, wantLabels)
		}
	}
}
