package platform

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/leadflow/leadflow/pkg/config"
)

// otlpHTTP is where and how spans are sent: OTLP over HTTP with protobuf
// bodies, configured by the standard OTEL_EXPORTER_OTLP_* variables (the
// TRACES_ one of each pair wins).
type otlpHTTP struct {
	URL     string // the traces endpoint, path included
	Headers map[string]string
	Timeout time.Duration
	Gzip    bool
	CA      string // PEM file of the roots that sign the collector's certificate
	Cert    string // client certificate and key files (mutual TLS)
	Key     string
}

// loadOTLP reads the exporter's variables, naming every bad one.
func loadOTLP(l *config.Loader) otlpHTTP {
	var c otlpHTTP
	if v := l.URL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", false); v != "" {
		c.URL = v // used as it is
	} else if v := l.URL("OTEL_EXPORTER_OTLP_ENDPOINT", "", false); v != "" {
		c.URL = v + "/v1/traces"
	}
	c.Headers = map[string]string{}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, kv := range l.List(name, false) {
			k, v, ok := strings.Cut(kv, "=")
			key, kerr := url.QueryUnescape(strings.TrimSpace(k))
			val, verr := url.QueryUnescape(strings.TrimSpace(v))
			if !ok || key == "" || kerr != nil || verr != nil {
				l.Check(false, "%s must be key=value pairs separated by commas (values URL-encoded)", name)
				break
			}
			c.Headers[key] = val
		}
	}
	ms := l.Int("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 600000)
	c.Timeout = time.Duration(l.Int("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", ms, 1, 600000)) * time.Millisecond
	comp := l.OneOf("OTEL_EXPORTER_OTLP_COMPRESSION", "none", "none", "gzip")
	c.Gzip = l.OneOf("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", comp, "none", "gzip") == "gzip"
	pick := func(traces, all string) string {
		if v := l.File(traces); v != "" {
			return v
		}
		return l.File(all)
	}
	c.CA = pick("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
	c.Cert = pick("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
	c.Key = pick("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY")
	l.Check((c.Cert == "") == (c.Key == ""), "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together")
	return c
}

// otlpClient is the transport behind the SDK's generic OTLP exporter
// (otlptrace.New). It stands in for otlptracehttp, whose configuration
// package links gRPC: about 5 MB more resident memory in every idle
// service (docs/BENCHMARKS.md) for a protocol leadflow does not ship. A
// failed upload is reported to OpenTelemetry's error handler and its spans
// are dropped: tracing never holds up a lead.
type otlpClient struct {
	cfg  otlpHTTP
	http *http.Client
}

func newOTLPClient(cfg otlpHTTP) (*otlpClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CA != "" || cfg.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CA != "" {
			pem, err := os.ReadFile(cfg.CA)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("otlp: no certificate in %s", cfg.CA)
			}
		}
		if cfg.Cert != "" {
			pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
			if err != nil {
				return nil, fmt.Errorf("otlp: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		tr.TLSClientConfig = tc
	}
	return &otlpClient{cfg: cfg, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

func (c *otlpClient) Start(context.Context) error { return nil }

func (c *otlpClient) Stop(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}

// UploadTraces posts one ExportTraceServiceRequest. Its only field is
// `repeated ResourceSpans resource_spans = 1`, so the body is each
// ResourceSpans as field 1.
func (c *otlpClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	var body []byte
	for _, rs := range spans {
		b, err := proto.Marshal(rs)
		if err != nil {
			return err
		}
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendBytes(body, b)
	}
	if c.cfg.Gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		body = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if c.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: the collector answered %s", resp.Status)
	}
	return nil
}
