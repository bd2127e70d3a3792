package platform

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/leadflow/leadflow/pkg/config"
)

// collector is a fake OTLP/HTTP receiver: it decodes every request as an
// ExportTraceServiceRequest, as a real collector does.
type collector struct {
	paths, names, auth, encodings []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.paths = append(c.paths, r.URL.Path)
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	c.encodings = append(c.encodings, r.Header.Get("Content-Encoding"))
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	raw, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(raw, &req) != nil {
		http.Error(w, "not OTLP protobuf", 400)
		return
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.names = append(c.names, s.Name)
			}
		}
	}
}

// Spans reach a collector as OTLP/HTTP protobuf at <endpoint>/v1/traces,
// with the configured headers, and gzip when asked.
func TestSpansReachAnOTLPCollector(t *testing.T) {
	for _, compression := range []string{"none", "gzip"} {
		t.Run(compression, func(t *testing.T) {
			c := &collector{}
			srv := httptest.NewServer(c)
			defer srv.Close()
			l := config.FromMap(map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":    srv.URL,
				"OTEL_EXPORTER_OTLP_HEADERS":     "Authorization=Bearer%20abc,x-tenant=leadflow",
				"OTEL_EXPORTER_OTLP_COMPRESSION": compression,
			})
			tr := LoadTracing(l)
			if err := l.Err(); err != nil || !tr.Enabled {
				t.Fatalf("enabled %v, err %v", tr.Enabled, err)
			}
			prev := otel.GetTracerProvider()
			t.Cleanup(func() { otel.SetTracerProvider(prev) })
			shutdown, err := SetupTracing(context.Background(), tr, "test")
			if err != nil {
				t.Fatal(err)
			}
			_, span := otel.Tracer("test").Start(context.Background(), "lead.received")
			span.End()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.names, ",") != "lead.received" {
				t.Fatalf("the collector got spans %q", c.names)
			}
			if c.paths[0] != "/v1/traces" || c.auth[0] != "Bearer abc" {
				t.Fatalf("path %q, Authorization %q", c.paths[0], c.auth[0])
			}
			if want := map[string]string{"none": "", "gzip": "gzip"}[compression]; c.encodings[0] != want {
				t.Fatalf("Content-Encoding %q, want %q", c.encodings[0], want)
			}
		})
	}
}

// Every bad exporter variable is named at once; TRACES_ ones win.
func TestOTLPConfiguration(t *testing.T) {
	l := config.FromMap(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":           "http://collector:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":    "http://traces:4318/custom",
		"OTEL_EXPORTER_OTLP_HEADERS":            "novalue",
		"OTEL_EXPORTER_OTLP_TIMEOUT":            "soon",
		"OTEL_EXPORTER_OTLP_COMPRESSION":        "zstd",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/nonexistent/cert.pem",
	})
	tr := LoadTracing(l)
	err := l.Err()
	if err == nil {
		t.Fatal("bad variables accepted")
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s is not named: %v", name, err)
		}
	}
	if tr.otlp.URL != "http://traces:4318/custom" {
		t.Errorf("traces endpoint %q: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is", tr.otlp.URL)
	}
}
