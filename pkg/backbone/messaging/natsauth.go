package messaging

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATSAuth is how a process proves itself to NATS and checks the servers:
// paths of mounted files, never the secrets themselves (deploy/README.md,
// "Authentication and TLS").
type NATSAuth struct {
	Creds    string // NATS_CREDS: a .creds file (user JWT and nkey seed; decentralised auth)
	NKeySeed string // NATS_NKEY_SEED: a file holding an nkey user seed (SU...)
	TLSCA    string // NATS_TLS_CA: PEM CA bundle of the servers' certificates
	TLSCert  string // NATS_TLS_CERT: client certificate (PEM), with TLSKey
	TLSKey   string // NATS_TLS_KEY: client key (PEM), with TLSCert
}

// NATSAuthEnv are the variables of NATSAuth, in its field order.
var NATSAuthEnv = []string{"NATS_CREDS", "NATS_NKEY_SEED", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"}

// NATSAuthFromEnv reads the variables with getenv (no checks: for tools
// such as leadflowctl; services read them through platform.LoadCommon).
func NATSAuthFromEnv(getenv func(string) string) NATSAuth {
	return NATSAuth{Creds: getenv("NATS_CREDS"), NKeySeed: getenv("NATS_NKEY_SEED"),
		TLSCA: getenv("NATS_TLS_CA"), TLSCert: getenv("NATS_TLS_CERT"), TLSKey: getenv("NATS_TLS_KEY")}
}

// Problems checks the files' contents and combinations and names the
// variable of each problem (never a secret). Files that do not exist are
// reported by the config loader before this runs; they are skipped here.
func (a NATSAuth) Problems() []string {
	var out []string
	read := func(path string) ([]byte, bool) {
		if path == "" {
			return nil, false
		}
		b, err := os.ReadFile(path)
		return b, err == nil
	}
	if a.Creds != "" && a.NKeySeed != "" {
		out = append(out, "NATS_CREDS and NATS_NKEY_SEED are exclusive: set one")
	}
	if b, ok := read(a.Creds); ok {
		if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
			out = append(out, "NATS_CREDS must name a .creds file with a user JWT")
		} else if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
			out = append(out, "NATS_CREDS must name a .creds file with a user nkey seed")
		}
	}
	if b, ok := read(a.NKeySeed); ok {
		if kp, err := nkeys.ParseDecoratedNKey(b); err != nil {
			out = append(out, "NATS_NKEY_SEED must name a file holding an nkey user seed (SU...)")
		} else if _, err := kp.Seed(); err != nil {
			out = append(out, "NATS_NKEY_SEED must hold a seed, not a public key")
		}
	}
	if b, ok := read(a.TLSCA); ok {
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			out = append(out, "NATS_TLS_CA must name a PEM file with CA certificates")
		}
	}
	switch {
	case (a.TLSCert == "") != (a.TLSKey == ""):
		out = append(out, "NATS_TLS_CERT and NATS_TLS_KEY must be set together")
	case a.TLSCert != "":
		_, okCert := read(a.TLSCert)
		_, okKey := read(a.TLSKey)
		if okCert && okKey {
			if _, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey); err != nil {
				out = append(out, "NATS_TLS_CERT and NATS_TLS_KEY must be a matching PEM certificate and key")
			}
		}
	}
	return out
}

// Options turns the files into nats.go options.
func (a NATSAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.Creds != "" {
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	if a.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeySeed)
		if err != nil {
			return nil, errors.New("NATS_NKEY_SEED: not a usable nkey seed")
		}
		opts = append(opts, o)
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}
