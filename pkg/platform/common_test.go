package platform

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/leadflow/leadflow/pkg/config"
)

func base() map[string]string {
	return map[string]string{"DATABASE_URL": "postgres://x", "NATS_URL": "nats://127.0.0.1:4222"}
}

func TestLoadCommonDefaults(t *testing.T) {
	c := LoadCommon(config.FromMap(base()), "resolver")
	if c.HealthPort != DefaultHealthPort || c.MetricsPort != 0 || c.ConsumerReplicas != 0 || c.Stream.Replicas != 1 {
		t.Fatalf("worker defaults: %+v", c)
	}
	e := base()
	e["HEALTH_PORT"] = "0"
	if c := LoadCommon(config.FromMap(e), "resolver"); c.HealthPort != 0 {
		t.Fatalf("HEALTH_PORT=0 must turn the server off, got %d", c.HealthPort)
	}
	c = LoadCommonWith(config.FromMap(base()), "ingest", Ports{Metrics: DefaultMetricsPort})
	if c.HealthPort != 0 || c.MetricsPort != DefaultMetricsPort {
		t.Fatalf("ingest defaults: %+v", c)
	}
}

func TestLoadCommonNamesEveryNATSProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := base()
	e["NATS_CREDS"] = filepath.Join(dir, "missing.creds")
	e["NATS_NKEY_SEED"] = write("seed", "not a seed")
	e["NATS_TLS_CA"] = write("ca.pem", "not pem")
	e["NATS_TLS_CERT"] = write("cert.pem", "x")
	e["STREAM_REPLICAS"] = "1"
	e["CONSUMER_REPLICAS"] = "3"
	l := config.FromMap(e)
	LoadCommon(l, "resolver")
	err := l.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"NATS_CREDS names a file that cannot be read", "NATS_CREDS and NATS_NKEY_SEED are exclusive",
		"NATS_NKEY_SEED must name a file holding an nkey user seed", "NATS_TLS_CA must name a PEM file",
		"NATS_TLS_CERT and NATS_TLS_KEY must be set together", "CONSUMER_REPLICAS must not exceed STREAM_REPLICAS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "not a seed") {
		t.Error("the error echoes a file's contents")
	}
}

func TestLoadCommonAcceptsGoodNATSFiles(t *testing.T) {
	dir := t.TempDir()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := selfSigned(t, dir)
	e := base()
	e["NATS_NKEY_SEED"], e["NATS_TLS_CA"], e["NATS_TLS_CERT"], e["NATS_TLS_KEY"] = seedFile, certFile, certFile, keyFile
	e["STREAM_REPLICAS"], e["CONSUMER_REPLICAS"] = "3", "1"
	l := config.FromMap(e)
	c := LoadCommon(l, "resolver")
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	opts, err := c.NATS.Options()
	if err != nil || len(opts) != 3 || c.ConsumerReplicas != 1 || c.Stream.Replicas != 3 {
		t.Fatalf("options %d, %v, %+v", len(opts), err, c)
	}
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leadflow"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, k := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, k
}

// A service binary runs on one P when GOMAXPROCS is unset, the edge
// (RuntimeMaxProcs) on the runtime's default, and both keep what
// GOMAXPROCS says when it is set.
func TestServiceMaxProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	runtime.SetDefaultGOMAXPROCS()
	runtimeDefault := runtime.GOMAXPROCS(0)
	for _, edge := range []bool{false, true} {
		runtime.GOMAXPROCS(3)
		t.Setenv("GOMAXPROCS", "3")
		serviceMaxProcs(Common{RuntimeMaxProcs: edge})
		if n := runtime.GOMAXPROCS(0); n != 3 {
			t.Fatalf("edge %v, GOMAXPROCS=3 set: runtime has %d", edge, n)
		}
		t.Setenv("GOMAXPROCS", "")
		serviceMaxProcs(Common{RuntimeMaxProcs: edge})
		want := defaultMaxProcs
		if edge {
			want = runtimeDefault
		}
		if n := runtime.GOMAXPROCS(0); n != want {
			t.Fatalf("edge %v, GOMAXPROCS unset: runtime has %d, want %d", edge, n, want)
		}
	}
}

func TestServiceGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	t.Setenv("GOGC", "")
	serviceGC()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GOGC unset: the collector runs at %d %%, want %d", got, defaultGCPercent)
	}
	// The runtime reads GOGC at start-up; an operator's value must stay.
	debug.SetGCPercent(150)
	t.Setenv("GOGC", "150")
	serviceGC()
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("GOGC=150 set: the collector runs at %d %%, want 150", got)
	}
}
