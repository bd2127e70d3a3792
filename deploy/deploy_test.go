// Package deploy_test checks the deployment files under deploy/ and the
// root docker-compose.yml by reading them the way their tools do: the
// Kubernetes manifests are rendered with kustomize's Go API, the NATS
// configs are loaded by nats-server's own config parser, and promtool (when
// installed) checks and unit-tests the Prometheus files.
//
//	go test -count=1 ./deploy/...
package deploy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	k8syaml "sigs.k8s.io/yaml"
)

var (
	services = []string{"ingest", "resolver", "enricher", "notifier"}
	// The durable consumer each worker's ScaledObject must watch
	// (docs/ARCHITECTURE.md).
	workerConsumer = map[string]string{
		"resolver": "resolver__leads_received",
		"enricher": "enricher__leads_resolved",
		"notifier": "notifier__leads_enriched",
	}
	// Variables a service exits 2 without (README.md, "Configuration").
	requiredEnv = map[string][]string{
		"ingest":   {"DATABASE_URL", "NATS_URL", "WEBHOOK_SECRET", "API_KEYS", "C2S_TOKEN", "WORK_API_KEY"},
		"resolver": {"DATABASE_URL", "NATS_URL", "C2S_TOKEN", "DIRETRIX_BASE_URL", "DIRETRIX_USER", "DIRETRIX_PASS"},
		"enricher": {"DATABASE_URL", "NATS_URL", "WORK_API_KEY"},
		"notifier": {"DATABASE_URL", "NATS_URL", "C2S_TOKEN"},
	}
	// Variables whose values are secrets: never a literal in a manifest.
	secretEnv = []string{"DATABASE_URL", "DB_URL", "WEBHOOK_SECRET", "API_KEYS", "C2S_TOKEN",
		"WORK_API_KEY", "WORK_API", "DIRETRIX_USER", "DIRETRIX_PASS"}
	// The variables the services read for a NATS cluster with auth and TLS.
	natsClientEnv = []string{"NATS_CREDS", "NATS_NKEY_SEED", "NATS_TLS_CA", "NATS_TLS_CERT",
		"NATS_TLS_KEY", "STREAM_REPLICAS", "CONSUMER_REPLICAS"}
)

// ---------------------------------------------------------------------------
// Kubernetes (deploy/k8s)
// ---------------------------------------------------------------------------

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	raw []byte
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"secretKeyRef"`
		ConfigMapKeyRef *struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		} `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env     []envVar `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
}

type deployment struct {
	Spec struct {
		Replicas *int `json:"replicas"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int        `json:"terminationGracePeriodSeconds"`
				Containers                    []container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type pdb struct {
	Spec struct {
		MinAvailable   any `json:"minAvailable"`
		MaxUnavailable any `json:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
	} `json:"spec"`
}

type service struct {
	Spec struct {
		ClusterIP string            `json:"clusterIP"`
		Selector  map[string]string `json:"selector"`
		Ports     []struct {
			Name       string `json:"name"`
			Port       int    `json:"port"`
			TargetPort any    `json:"targetPort"`
		} `json:"ports"`
	} `json:"spec"`
}

type scaledObject struct {
	Spec struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int `json:"minReplicaCount"`
		MaxReplicaCount *int `json:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

type configMap struct {
	Data map[string]string `json:"data"`
}

// render builds a kustomization directory with kustomize's Go API.
func render(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []object
	for _, r := range resMap.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		var o object
		if err := k8syaml.Unmarshal(y, &o); err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		o.raw = y
		objs = append(objs, o)
	}
	return objs
}

func decode[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	if err := k8syaml.Unmarshal(o.raw, &v); err != nil {
		t.Fatalf("%s/%s: %v", o.Kind, o.Metadata.Name, err)
	}
	return v
}

func byKind(objs []object, kind string) map[string]object {
	m := map[string]object{}
	for _, o := range objs {
		if o.Kind == kind {
			m[o.Metadata.Name] = o
		}
	}
	return m
}

func TestKustomizeBase(t *testing.T) {
	objs := render(t, "k8s/base")
	checkManifests(t, objs)
}

func TestKustomizeExampleOverlay(t *testing.T) {
	objs := render(t, "k8s/overlays/example")
	checkManifests(t, objs)
	for _, o := range objs {
		if o.Kind == "Namespace" {
			continue
		}
		if o.Metadata.Namespace != "leadflow" {
			t.Errorf("%s/%s: namespace %q, want leadflow", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
	for name, o := range byKind(objs, "Deployment") {
		d := decode[deployment](t, o)
		if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, "registry.example.com/leadflow/"+name+":") {
			t.Errorf("%s: image %q not rewritten by the overlay", name, img)
		}
	}
	so := decode[scaledObject](t, byKind(objs, "ScaledObject")["notifier"])
	var consumers []string
	for _, tr := range so.Spec.Triggers {
		consumers = append(consumers, tr.Metadata["consumer"])
	}
	if !slices.Contains(consumers, "notifier__leads_unresolved") {
		t.Errorf("overlay sets NOTIFY_UNRESOLVED=true but the notifier does not scale on notifier__leads_unresolved: %v", consumers)
	}
}

// The overlay's commented NATS auth patch must apply to every Deployment
// once enabled: render a copy of the overlay with it on.
func TestKustomizeNATSAuthPatch(t *testing.T) {
	tmp := t.TempDir()
	abs, err := filepath.Abs("k8s")
	if err != nil {
		t.Fatal(err)
	}
	// Same layout depth, so ../../base resolves: <tmp>/k8s/overlays/auth.
	if err := os.CopyFS(filepath.Join(tmp, "k8s"), os.DirFS(abs)); err != nil {
		t.Fatal(err)
	}
	kfile := filepath.Join(tmp, "k8s/overlays/example/kustomization.yaml")
	b, err := os.ReadFile(kfile)
	if err != nil {
		t.Fatal(err)
	}
	enabled := strings.NewReplacer(
		"  # - path: nats-auth.yaml\n", "  - path: nats-auth.yaml\n",
		"  #   target:\n", "    target:\n",
		"  #     kind: Deployment\n", "      kind: Deployment\n",
		"  #     labelSelector: app.kubernetes.io/part-of=leadflow\n", "      labelSelector: app.kubernetes.io/part-of=leadflow\n",
	).Replace(string(b))
	if enabled == string(b) {
		t.Fatal("the commented nats-auth.yaml patch is no longer in overlays/example/kustomization.yaml")
	}
	if err := os.WriteFile(kfile, []byte(enabled), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := render(t, filepath.Join(tmp, "k8s/overlays/example"))
	checkManifests(t, objs)
	deps := byKind(objs, "Deployment")
	if len(deps) != 4 {
		t.Fatalf("%d Deployments", len(deps))
	}
	for name, o := range deps {
		c := decode[deployment](t, o).Spec.Template.Spec.Containers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		for _, k := range []string{"NATS_CREDS", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"} {
			if !strings.HasPrefix(env[k], "/etc/leadflow/nats/") {
				t.Errorf("%s: %s = %q, want a file under the mounted secret", name, k, env[k])
			}
		}
	}
}

func checkManifests(t *testing.T, objs []object) {
	t.Helper()
	if secrets := byKind(objs, "Secret"); len(secrets) > 0 {
		t.Errorf("the manifests create Secrets %v: secret values must not live in the repo", keys(secrets))
	}
	cms := map[string]map[string]string{}
	for name, o := range byKind(objs, "ConfigMap") {
		cms[name] = decode[configMap](t, o).Data
	}

	deps := byKind(objs, "Deployment")
	if got := keys(deps); !slices.Equal(got, sorted(services)) {
		t.Fatalf("Deployments %v, want %v", got, sorted(services))
	}
	podLabels := map[string]map[string]string{}
	for _, name := range services {
		t.Run("deployment/"+name, func(t *testing.T) {
			d := decode[deployment](t, deps[name])
			podLabels[name] = d.Spec.Template.Metadata.Labels
			if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
				t.Errorf("selector %v does not match the pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
			}
			if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 15 {
				t.Errorf("terminationGracePeriodSeconds %v: the services need up to 10 s to drain (RUN.md); want >= 15", deref(g))
			}
			if n := len(d.Spec.Template.Spec.Containers); n != 1 {
				t.Fatalf("%d containers, want 1", n)
			}
			c := d.Spec.Template.Spec.Containers[0]

			// Environment: every required variable, secrets only by reference.
			env := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					if e.ValueFrom.SecretKeyRef.Name != "leadflow-secrets" {
						t.Errorf("%s comes from Secret %q, want leadflow-secrets", e.Name, e.ValueFrom.SecretKeyRef.Name)
					}
					env[e.Name] = "<secret>"
				case e.ValueFrom != nil:
					env[e.Name] = "<ref>"
				default:
					if slices.Contains(secretEnv, e.Name) {
						t.Errorf("%s is a secret but has a literal value in the manifest", e.Name)
					}
					env[e.Name] = e.Value
				}
			}
			fromConfigMap := false
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				data, ok := cms[ef.ConfigMapRef.Name]
				if !ok {
					t.Errorf("envFrom ConfigMap %q is not rendered", ef.ConfigMapRef.Name)
					continue
				}
				fromConfigMap = true
				for k, v := range data {
					if slices.Contains(secretEnv, k) {
						t.Errorf("ConfigMap %s holds the secret %s", ef.ConfigMapRef.Name, k)
					}
					if _, set := env[k]; !set {
						env[k] = v
					}
				}
			}
			if !fromConfigMap {
				t.Error("no configuration from a ConfigMap (envFrom.configMapRef)")
			}
			for _, k := range requiredEnv[name] {
				if env[k] == "" {
					t.Errorf("required %s is not set (the service would exit 2)", k)
				}
			}
			if urls := strings.Split(env["NATS_URL"], ","); len(urls) != 3 {
				t.Errorf("NATS_URL %q: want the three cluster nodes", env["NATS_URL"])
			}
			if env["STREAM_REPLICAS"] != "3" {
				t.Errorf("STREAM_REPLICAS = %q, want 3 on a 3-node cluster", env["STREAM_REPLICAS"])
			}

			// Probes: /ready and /health on PORT (ingest) or HEALTH_PORT.
			wantPort := 8081
			if name == "ingest" {
				wantPort = atoiOr(env["PORT"], 8080)
				if wantPort != 8080 {
					t.Errorf("ingest PORT = %q, want 8080", env["PORT"])
				}
			} else if env["HEALTH_PORT"] != "8081" {
				t.Errorf("HEALTH_PORT = %q, want 8081 set explicitly", env["HEALTH_PORT"])
			}
			for _, p := range []struct {
				kind string
				pr   *probe
				path string
			}{{"readiness", c.ReadinessProbe, "/ready"}, {"liveness", c.LivenessProbe, "/health"}} {
				if p.pr == nil || p.pr.HTTPGet == nil {
					t.Errorf("no %s httpGet probe", p.kind)
					continue
				}
				if p.pr.HTTPGet.Path != p.path {
					t.Errorf("%s probe path %q, want %q", p.kind, p.pr.HTTPGet.Path, p.path)
				}
				if got := resolvePort(c, p.pr.HTTPGet.Port); got != wantPort {
					t.Errorf("%s probe port %v = %d, want %d", p.kind, p.pr.HTTPGet.Port, got, wantPort)
				}
			}
			if resolvePort(c, "metrics") != 8081 {
				t.Error("no container port named metrics = 8081 (HEALTH_PORT) for Prometheus")
			}

			// Resources: docs/BENCHMARKS.md, ~17 MB idle, <= 42 MB peak; the
			// Go soft limit is 48 MiB.
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" {
					t.Errorf("no %s request", r)
				}
			}
			if req := mebibytes(t, c.Resources.Requests["memory"]); req < 42 {
				t.Errorf("memory request %s is below the measured peak (42 MB)", c.Resources.Requests["memory"])
			}
			if lim := c.Resources.Limits["memory"]; lim == "" {
				t.Error("no memory limit")
			} else if mebibytes(t, lim) <= 48 {
				t.Errorf("memory limit %s leaves no room above GOMEMLIMIT (48 MiB)", lim)
			}
		})
	}

	pdbs := byKind(objs, "PodDisruptionBudget")
	for _, name := range services {
		found := false
		for pname, o := range pdbs {
			p := decode[pdb](t, o)
			if len(p.Spec.Selector.MatchLabels) == 0 || !subset(p.Spec.Selector.MatchLabels, podLabels[name]) {
				continue
			}
			found = true
			if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
				t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", pname)
			}
		}
		if !found {
			t.Errorf("no PodDisruptionBudget selects %s", name)
		}
	}

	svcs := byKind(objs, "Service")
	ing, ok := svcs["ingest"]
	if !ok {
		t.Error("no Service ingest")
	} else {
		s := decode[service](t, ing)
		ingC := decode[deployment](t, deps["ingest"]).Spec.Template.Spec.Containers[0]
		if !subset(s.Spec.Selector, podLabels["ingest"]) {
			t.Errorf("Service ingest selector %v does not select ingest", s.Spec.Selector)
		}
		public := false
		for _, p := range s.Spec.Ports {
			if p.Port == 8080 && resolvePort(ingC, p.TargetPort) == 8080 {
				public = true
			}
			if resolvePort(ingC, p.TargetPort) == 8081 {
				t.Error("the public Service ingest exposes the metrics port")
			}
		}
		if !public {
			t.Error("Service ingest does not expose 8080 -> the container's 8080")
		}
	}
	metricsSvc := false
	for _, o := range svcs {
		s := decode[service](t, o)
		for _, p := range s.Spec.Ports {
			if p.Name != "metrics" {
				continue
			}
			metricsSvc = true
			for _, name := range services {
				if !subset(s.Spec.Selector, podLabels[name]) {
					t.Errorf("metrics Service %s does not select %s", o.Metadata.Name, name)
				}
				c := decode[deployment](t, deps[name]).Spec.Template.Spec.Containers[0]
				if resolvePort(c, p.TargetPort) != 8081 {
					t.Errorf("metrics Service %s targets %v, not 8081 in %s", o.Metadata.Name, p.TargetPort, name)
				}
			}
		}
	}
	if !metricsSvc {
		t.Error("no Service with a port named metrics")
	}

	sos := byKind(objs, "ScaledObject")
	if _, ok := sos["ingest"]; ok {
		t.Error("ingest is scaled by KEDA; it serves HTTP and has no consumer")
	}
	for w, consumer := range workerConsumer {
		t.Run("scaledobject/"+w, func(t *testing.T) {
			var so *scaledObject
			for _, o := range sos {
				s := decode[scaledObject](t, o)
				if s.Spec.ScaleTargetRef.Name == w {
					so = &s
				}
			}
			if so == nil {
				t.Fatalf("no ScaledObject targets %s", w)
			}
			if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
				t.Errorf("minReplicaCount %v, want >= 1", deref(so.Spec.MinReplicaCount))
			}
			if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount > 10 || *so.Spec.MaxReplicaCount < deref(so.Spec.MinReplicaCount) {
				t.Errorf("maxReplicaCount %v: want a bound (<= 10) above minReplicaCount", deref(so.Spec.MaxReplicaCount))
			}
			found := false
			for _, tr := range so.Spec.Triggers {
				if tr.Type != "nats-jetstream" {
					continue
				}
				m := tr.Metadata
				if m["natsServerMonitoringEndpoint"] == "" || m["stream"] != "LEADS" || m["account"] == "" {
					t.Errorf("trigger %v: want natsServerMonitoringEndpoint, account and stream LEADS", m)
				}
				if n, err := strconv.Atoi(m["lagThreshold"]); err != nil || n <= 0 {
					t.Errorf("lagThreshold %q, want a positive integer", m["lagThreshold"])
				}
				if m["consumer"] == consumer {
					found = true
					if m["account"] != "$G" {
						t.Errorf("account %q, want $G (no NATS accounts configured)", m["account"])
					}
				} else if !strings.HasPrefix(m["consumer"], w+"__") {
					t.Errorf("trigger watches %q, a consumer of another service", m["consumer"])
				}
			}
			if !found {
				t.Errorf("no nats-jetstream trigger on consumer %s", consumer)
			}
		})
	}
}

func resolvePort(c container, port any) int {
	switch p := port.(type) {
	case float64:
		return int(p)
	case int:
		return p
	case string:
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return -1
}

// mebibytes reads a Kubernetes memory quantity (Mi, Gi, M, G, plain bytes).
func mebibytes(t *testing.T, q string) float64 {
	t.Helper()
	units := []struct {
		suffix string
		mib    float64
	}{{"Ki", 1.0 / 1024}, {"Mi", 1}, {"Gi", 1024}, {"k", 1000.0 / 1048576}, {"M", 1e6 / 1048576}, {"G", 1e9 / 1048576}}
	for _, u := range units {
		if strings.HasSuffix(q, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(q, u.suffix), 64)
			if err != nil {
				t.Fatalf("memory quantity %q: %v", q, err)
			}
			return n * u.mib
		}
	}
	n, err := strconv.ParseFloat(q, 64)
	if err != nil {
		t.Fatalf("memory quantity %q: %v", q, err)
	}
	return n / 1048576
}

// ---------------------------------------------------------------------------
// Observability (deploy/observability)
// ---------------------------------------------------------------------------

var (
	metricName = regexp.MustCompile(`leadflow_[a-z][a-z0-9_]*[a-z0-9]`)
	tableRow   = regexp.MustCompile("^\\|\\s*`(leadflow_[a-z0-9_]+)`\\s*\\|\\s*(counter|gauge|histogram)\\s*\\|")
)

// metricTable reads the name and type of every row of the metrics table.
func metricTable(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("observability/README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := tableRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := table[m[1]]; dup {
			t.Errorf("README.md lists %s twice", m[1])
		}
		table[m[1]] = m[2]
	}
	if len(table) == 0 {
		t.Fatal("no metrics table in observability/README.md")
	}
	return table
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) (ruleFile, []byte) {
	t.Helper()
	b, err := os.ReadFile("observability/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return rf, b
}

// dashboardExprs returns every "expr" in the dashboard, with the panel title.
func dashboardExprs(t *testing.T) (map[string]string, []byte) {
	t.Helper()
	b, err := os.ReadFile("observability/grafana/leadflow.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("leadflow.json: %v", err)
	}
	exprs := map[string]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["title"].(string); ok {
				title = s
			}
			for k, c := range x {
				if s, ok := c.(string); ok && k == "expr" {
					exprs[s] = title
				}
				walk(c, title)
			}
		case []any:
			for _, c := range x {
				walk(c, title)
			}
		}
	}
	walk(dash, "")
	return exprs, b
}

// usedMetrics maps each leadflow_* name in text to its base metric: the
// _bucket, _sum and _count series of a histogram count as the histogram.
func usedMetrics(t *testing.T, where string, text string, table map[string]string) map[string]bool {
	t.Helper()
	used, unknown := map[string]bool{}, map[string]bool{}
	for _, n := range metricName.FindAllString(text, -1) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && table[b] == "histogram" {
				base = b
			}
		}
		if _, ok := table[base]; !ok {
			if !unknown[n] {
				t.Errorf("%s uses %s, which is not in the metrics table of observability/README.md", where, n)
			}
			unknown[n] = true
			continue
		}
		used[base] = true
	}
	return used
}

func TestMetricNamesAreDocumented(t *testing.T) {
	table := metricTable(t)
	rf, rawRules := loadRules(t)
	exprs, rawDash := dashboardExprs(t)

	var ruleExprs, dashExprs strings.Builder
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			ruleExprs.WriteString(r.Expr + "\n")
		}
	}
	for e := range exprs {
		dashExprs.WriteString(e + "\n")
	}
	used := map[string]bool{}
	for _, src := range []struct{ where, text string }{
		{"an alert expression", ruleExprs.String()},
		{"alerts.yml", string(rawRules)},
		{"a dashboard query", dashExprs.String()},
		{"leadflow.json", string(rawDash)},
	} {
		for n := range usedMetrics(t, src.where, src.text, table) {
			used[n] = true
		}
	}
	for n := range table {
		if !used[n] {
			t.Errorf("%s is in the table but neither alerted on nor graphed", n)
		}
	}
	// Every name in the table must be a metric name the Go code can export.
	for n, typ := range table {
		if typ == "counter" && !strings.HasSuffix(n, "_total") {
			t.Errorf("counter %s does not end in _total", n)
		}
		if typ != "counter" && strings.HasSuffix(n, "_total") && n != "leadflow_pgxpool_acquire_wait_seconds_total" {
			t.Errorf("%s %s ends in _total", typ, n)
		}
	}
}

func TestAlertRules(t *testing.T) {
	rf, _ := loadRules(t)
	alerts := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = r.Expr
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a severity label and summary and description annotations", r.Alert)
			}
		}
	}
	// The list: each must have a rule built on the right metric.
	for _, want := range []struct{ what, metric string }{
		{"C2S token invalid", "leadflow_c2s_token_invalid_total"},
		{"Work API token invalid", "leadflow_workapi_token_invalid_total"},
		{"Work API credits exhausted", "leadflow_workapi_credits_ok"},
		{"Work API credits exhausted", "leadflow_workapi_credits_exhausted_total"},
		{"dead-letter growth", "leadflow_dlq_messages"},
		{"consumer lag", "leadflow_consumer_pending_messages"},
		{"uncertain deliveries open", "leadflow_uncertain_deliveries_open"},
		{"breaker open", "leadflow_upstream_breaker_state"},
		{"no leads in working hours", "leadflow_leads_published_total"},
	} {
		found := false
		for _, expr := range alerts {
			if strings.Contains(expr, want.metric) {
				found = true
			}
		}
		if !found {
			t.Errorf("no alert for %s (on %s)", want.what, want.metric)
		}
	}
	noLeads := ""
	for _, expr := range alerts {
		if strings.Contains(expr, "leadflow_leads_published_total") && strings.Contains(expr, "hour()") {
			noLeads = expr
		}
	}
	if !strings.Contains(noLeads, "day_of_week()") {
		t.Error("the no-leads alert must be limited to working hours with hour() and day_of_week()")
	}
}

func TestGrafanaDashboard(t *testing.T) {
	_, raw := dashboardExprs(t)
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable of type prometheus")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
		}
	}
}

// promtool, from Debian's prometheus package, checks the files the way
// Prometheus will load them.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH (Debian: apt-get install prometheus); the rule and config checks need it")
	}
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		return string(out), err
	}
	t.Run("check rules", func(t *testing.T) {
		if out, err := run(t, "check", "rules", "observability/alerts.yml"); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	})
	t.Run("test rules", func(t *testing.T) {
		if out, err := run(t, "test", "rules", "observability/alerts_test.yml", "observability/alerts_hours_test.yml"); err != nil {
			t.Fatalf("promtool test rules: %v\n%s", err, out)
		}
	})
	t.Run("check config compose", func(t *testing.T) {
		if out, err := run(t, "check", "config", "observability/prometheus.yml"); err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	})
	t.Run("check config k8s", func(t *testing.T) {
		out, err := run(t, "check", "config", "observability/prometheus.k8s.yml")
		if err != nil && strings.Contains(out, "field kubernetes_sd_configs not found") {
			t.Skip("this promtool is built without Kubernetes discovery (Debian's is)")
		}
		if err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	})
	// The dashboard's queries, as recording rules, so promtool parses them.
	t.Run("dashboard queries parse", func(t *testing.T) {
		exprs, _ := dashboardExprs(t)
		var rules []map[string]string
		var list []string
		for e := range exprs {
			list = append(list, e)
		}
		sort.Strings(list)
		for i, e := range list {
			e = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h").Replace(e)
			rules = append(rules, map[string]string{"record": fmt.Sprintf("leadflow_dashboard_check_%d", i), "expr": e})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := run(t, "check", "rules", f); err != nil {
			t.Fatalf("a dashboard query does not parse: %v\n%s", err, out)
		}
	})
}

// ---------------------------------------------------------------------------
// NATS cluster (deploy/nats)
// ---------------------------------------------------------------------------

func TestNATSClusterConfigs(t *testing.T) {
	nodes := []string{"nats-1", "nats-2", "nats-3"}
	for _, node := range nodes {
		t.Run(node, func(t *testing.T) {
			opts, err := server.ProcessConfigFile(filepath.Join("nats", node+".conf"))
			if err != nil {
				t.Fatalf("nats-server rejects %s.conf: %v", node, err)
			}
			if opts.ServerName != node {
				t.Errorf("server_name %q, want %q", opts.ServerName, node)
			}
			if opts.Port != 4222 || opts.HTTPPort != 8222 {
				t.Errorf("client port %d, monitoring port %d; want 4222 and 8222", opts.Port, opts.HTTPPort)
			}
			if !opts.JetStream || opts.StoreDir == "" {
				t.Errorf("JetStream %v with store_dir %q: want JetStream on a store directory", opts.JetStream, opts.StoreDir)
			}
			if opts.Cluster.Name != "leadflow" || opts.Cluster.Port != 6222 {
				t.Errorf("cluster %q on port %d, want leadflow on 6222", opts.Cluster.Name, opts.Cluster.Port)
			}
			var routes []string
			for _, u := range opts.Routes {
				if u.Port() != "6222" {
					t.Errorf("route %s: want the cluster port 6222", u)
				}
				routes = append(routes, u.Hostname())
			}
			sort.Strings(routes)
			var want []string
			for _, other := range nodes {
				if other != node {
					want = append(want, other)
				}
			}
			if !slices.Equal(routes, want) {
				t.Errorf("routes to %v, want the two other nodes %v", routes, want)
			}
		})
	}
}

// The commented examples must be valid once un-commented: sections B (nkey
// accounts) and C (client TLS) through the include line of a node file, and
// D (route TLS and authorization) inside its cluster block.
func TestNATSAuthTLSExample(t *testing.T) {
	tmp := t.TempDir()
	example, err := os.ReadFile("nats/auth-tls.example.conf")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	cur := ""
	for _, line := range strings.Split(string(example), "\n") {
		if strings.HasPrefix(line, "## ==== ") {
			cur = strings.TrimPrefix(line, "## ==== ")[:1]
			continue
		}
		if cur != "" && strings.HasPrefix(line, "# ") {
			sections[cur] += strings.TrimPrefix(line, "# ") + "\n"
		} else if cur != "" && line == "#" {
			sections[cur] += "\n"
		}
	}
	for _, s := range []string{"A", "B", "C", "D"} {
		if strings.TrimSpace(sections[s]) == "" {
			t.Fatalf("section %s of auth-tls.example.conf is missing or empty", s)
		}
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	writeCerts(t, tmp, "ca.pem", "server.pem", "server-key.pem", "route.pem", "route-key.pem")
	t.Setenv("NATS_SYS_PASSWORD", "test-only")
	t.Setenv("NATS_ROUTE_PASSWORD", "test-only")
	fix := strings.NewReplacer(
		"UDPLACEHOLDERPUBLICKEYOFTHELEADFLOWSERVICESUSERXXXXXXXXXX", pub,
		"/etc/nats/tls/", tmp+"/",
	)
	if err := os.WriteFile(filepath.Join(tmp, "auth-tls.conf"), []byte(fix.Replace(sections["B"]+sections["C"])), 0o600); err != nil {
		t.Fatal(err)
	}
	node, err := os.ReadFile("nats/nats-1.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(node)
	for old, repl := range map[string]string{
		`# include "auth-tls.conf"`:                                       `include "auth-tls.conf"`,
		"  # Route authentication and TLS: see auth-tls.example.conf.\n}": fix.Replace(sections["D"]) + "}",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("nats-1.conf no longer contains %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	path := filepath.Join(tmp, "nats-1.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects nats-1.conf with sections B, C and D enabled: %v\n%s", err, conf)
	}
	if len(opts.Nkeys) != 1 || opts.Nkeys[0].Nkey != pub {
		t.Errorf("nkey users %v, want the one of section B", opts.Nkeys)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Error("section C does not turn on client TLS with client verification")
	}
	if opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || opts.Cluster.Username != "route" {
		t.Error("section D does not turn on route TLS and authorization")
	}
	if opts.Cluster.Name != "leadflow" || len(opts.Routes) != 2 {
		t.Errorf("section D broke the cluster block: name %q, %d routes", opts.Cluster.Name, len(opts.Routes))
	}
	// Section A needs an operator JWT made with nsc; check that it names the
	// settings of decentralised auth.
	for _, k := range []string{"operator:", "system_account:", "resolver:"} {
		if !strings.Contains(sections["A"], k) {
			t.Errorf("section A lacks %s", k)
		}
	}
}

// writeCerts makes a CA and one certificate for nats-1..3, written as the
// named PEM files: ca, then cert/key pairs.
func writeCerts(t *testing.T, dir string, caFile string, pairs ...string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leadflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, caFile), "CERTIFICATE", caDER)
	for i := 0; i+1 < len(pairs); i += 2 {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "nats"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames:    []string{"nats-1", "nats-2", "nats-3"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Join(dir, pairs[i]), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, pairs[i+1]), "PRIVATE KEY", keyDER)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml (default set and the "cluster" profile)
// ---------------------------------------------------------------------------

type composeService struct {
	Profiles    []string          `yaml:"profiles"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   any               `yaml:"depends_on"` // a list or a map
	Volumes     []string          `yaml:"volumes"`
	Deploy      struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func loadCompose(t *testing.T) (map[string]composeService, string) {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c.Services, string(b)
}

func TestComposeDefaultUnchanged(t *testing.T) {
	svcs, _ := loadCompose(t)
	for _, name := range append([]string{"nats", "postgres", "sim"}, services...) {
		s, ok := svcs[name]
		if !ok {
			t.Errorf("default service %s is gone", name)
			continue
		}
		if len(s.Profiles) > 0 {
			t.Errorf("default service %s has profiles %v: plain `docker compose up` would not start it", name, s.Profiles)
		}
	}
	for _, name := range services {
		if got := svcs[name].Environment["NATS_URL"]; got != "nats://nats:4222" {
			t.Errorf("%s: NATS_URL %q, want the single node nats://nats:4222", name, got)
		}
		if r := svcs[name].Environment["STREAM_REPLICAS"]; r != "" && r != "1" {
			t.Errorf("%s: STREAM_REPLICAS %q on a single node", name, r)
		}
	}
}

func TestComposeClusterProfile(t *testing.T) {
	svcs, raw := loadCompose(t)
	inCluster := func(s composeService) bool { return slices.Contains(s.Profiles, "cluster") }
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("nats-%d", i)
		s, ok := svcs[name]
		if !ok || !inCluster(s) {
			t.Errorf("no NATS node %s in profile cluster", name)
			continue
		}
		mount := fmt.Sprintf("./deploy/nats/%s.conf:/etc/nats/nats.conf:ro", name)
		if !slices.Contains(s.Volumes, mount) || !slices.Contains(s.Command, "/etc/nats/nats.conf") {
			t.Errorf("%s does not run deploy/nats/%s.conf (volumes %v, command %v)", name, name, s.Volumes, s.Command)
		}
	}
	for _, name := range services {
		s, ok := svcs["cluster-"+name]
		if !ok || !inCluster(s) {
			t.Errorf("no cluster-%s in profile cluster", name)
			continue
		}
		if s.Deploy.Replicas != 2 {
			t.Errorf("cluster-%s: %d replicas, want 2", name, s.Deploy.Replicas)
		}
		urls := strings.Split(s.Environment["NATS_URL"], ",")
		slices.Sort(urls)
		if want := []string{"nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"}; !slices.Equal(urls, want) {
			t.Errorf("cluster-%s: NATS_URL %v, want %v", name, urls, want)
		}
		if s.Environment["STREAM_REPLICAS"] != "3" {
			t.Errorf("cluster-%s: STREAM_REPLICAS %q, want 3", name, s.Environment["STREAM_REPLICAS"])
		}
		for i := 1; i <= 3; i++ {
			if !dependsOn(s, fmt.Sprintf("nats-%d", i)) {
				t.Errorf("cluster-%s does not wait for nats-%d", name, i)
			}
		}
		if dependsOn(s, "nats") {
			t.Errorf("cluster-%s depends on the single-node nats", name)
		}
		for _, k := range requiredEnv[name] {
			if s.Environment[k] == "" {
				t.Errorf("cluster-%s: required %s is not set", name, k)
			}
		}
	}
	// The variables the Go code is to read, shown (commented) for the cluster.
	for _, k := range natsClientEnv {
		if !regexp.MustCompile(`(?m)^\s*#?\s*` + k + `:`).MatchString(raw) {
			t.Errorf("docker-compose.yml does not show %s for the cluster profile", k)
		}
	}
}

func dependsOn(s composeService, name string) bool {
	switch d := s.DependsOn.(type) {
	case map[string]any:
		_, ok := d[name]
		return ok
	case []any:
		return slices.Contains(d, any(name))
	}
	return false
}

// When a compose binary is installed, it must accept the file too.
func TestComposeConfigValid(t *testing.T) {
	var cmd []string
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err == nil && bytes.Contains(out, []byte("version")) {
		cmd = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		cmd = []string{"docker-compose"}
	} else {
		t.Skip("neither `docker compose` nor docker-compose is installed")
	}
	// Profiles only add services, so one run with every profile checks the
	// default set too (one run: docker-compose v1 takes seconds per call).
	args := append(append([]string{}, cmd[1:]...), "-f", "../docker-compose.yml", "--project-directory", "..",
		"--profile", "cluster", "--profile", "observability", "--profile", "tools", "config", "-q")
	if out, err := exec.Command(cmd[0], args...).CombinedOutput(); err != nil {
		t.Errorf("%s %s: %v\n%s", cmd[0], strings.Join(args, " "), err, out)
	}
}

// ---------------------------------------------------------------------------
// Fly.io (deploy/fly)
// ---------------------------------------------------------------------------

func TestFlyConfigs(t *testing.T) {
	killTimeout := regexp.MustCompile(`(?m)^kill_timeout\s*=\s*"?(\d+)s?"?\s*$`)
	healthPath := regexp.MustCompile(`(?m)^\s*path\s*=\s*"/health"\s*$`)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("fly", name+".toml"))
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			m := killTimeout.FindStringSubmatch(text)
			if m == nil {
				t.Fatal("no kill_timeout")
			}
			if n, _ := strconv.Atoi(m[1]); n < 15 {
				t.Errorf("kill_timeout %d s: the drain takes up to 10 s; want >= 15", n)
			}
			if !strings.Contains(text, `kill_signal = "SIGTERM"`) {
				t.Error(`kill_signal is not "SIGTERM" (the services drain on SIGTERM)`)
			}
			if !healthPath.MatchString(text) {
				t.Error("no health check on /health")
			}
			if !strings.Contains(text, fmt.Sprintf(`SERVICE = "%s"`, name)) {
				t.Errorf("build arg SERVICE is not %q", name)
			}
			if !strings.Contains(text, `HEALTH_PORT = "8081"`) || !strings.Contains(text, "port = 8081") {
				t.Error("HEALTH_PORT 8081 and a check on port 8081 expected")
			}
			for _, line := range strings.Split(text, "\n") {
				l := strings.TrimSpace(line)
				if strings.HasPrefix(l, "#") {
					continue
				}
				for _, k := range secretEnv {
					if strings.HasPrefix(l, k+" ") || strings.HasPrefix(l, k+"=") {
						t.Errorf("secret %s written in the file; use `fly secrets set`", k)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func subset(sub, super map[string]string) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
