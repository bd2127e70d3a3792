// Package embedded runs a NATS JetStream server inside the process: the
// local stack uses it when no NATS_URL is given, and tests use it to kill and
// revive the broker. It is not test code, so binaries may link it.
package embedded

import (
	"fmt"
	"path/filepath"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded JetStream server.
type NATS struct {
	Server *natsserver.Server
	URL    string
	Dir    string
}

// Start starts a JetStream server storing into dir on port (-1 = any free
// port) of 127.0.0.1. Restarting on the same dir and port keeps the streams,
// which lets tests kill and revive the broker.
func Start(dir string, port int) (*NATS, error) {
	opts := &natsserver.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  filepath.Join(dir, "js"),
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server not ready")
	}
	return &NATS{Server: s, URL: s.ClientURL(), Dir: dir}, nil
}

// Shutdown stops the server and waits for it.
func (n *NATS) Shutdown() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
