package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is n JetStream servers in one NATS cluster on loopback, routed to
// one another, for tests of replicated streams and of losing a node.
type Cluster struct {
	mu    sync.Mutex
	opts  []*natsserver.Options
	nodes []*natsserver.Server // nil while a node is down
}

// StartCluster starts n nodes (named n1..nN, cluster "leadflow") storing
// under dir/n<i>, and returns once JetStream has a meta leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("embedded: a cluster needs at least one node")
	}
	client, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routes, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: make([]*natsserver.Options, n), nodes: make([]*natsserver.Server, n)}
	for i := 0; i < n; i++ {
		var peers []string
		for j := 0; j < n; j++ {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", routes[j]))
			}
		}
		c.opts[i] = &natsserver.Options{
			ServerName:          fmt.Sprintf("n%d", i+1),
			Host:                "127.0.0.1",
			Port:                client[i],
			JetStream:           true,
			JetStreamMaxMemory:  64 << 20,
			JetStreamMaxStore:   1 << 30,
			StoreDir:            filepath.Join(dir, fmt.Sprintf("n%d", i+1), "js"),
			NoLog:               true,
			NoSigs:              true,
			LameDuckDuration:    2 * time.Second,
			LameDuckGracePeriod: 500 * time.Millisecond,
			Cluster:             natsserver.ClusterOpts{Name: "leadflow", Host: "127.0.0.1", Port: routes[i]},
			Routes:              natsserver.RoutesFromStr(strings.Join(peers, ",")),
		}
	}
	for i := range c.opts {
		if err := c.start(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func (c *Cluster) start(i int) error {
	s, err := natsserver.NewServer(c.opts[i].Clone())
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("embedded cluster node %s not ready", c.opts[i].ServerName)
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
	return nil
}

// URL is the client URL of every node, comma-separated (NATS_URL).
func (c *Cluster) URL() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.opts) }

// Name is node i's server name (n1, n2, ...), as JetStream reports leaders.
func (c *Cluster) Name(i int) string { return c.opts[i].ServerName }

// Index is the node named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, o := range c.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// Stop stops node i: at once, like a crash, or in lame duck mode (it stops
// taking clients, hands its leaderships over and closes its clients over 2
// s, as SIGUSR2 does).
func (c *Cluster) Stop(i int, lameDuck bool) {
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s == nil {
		return
	}
	if lameDuck {
		s.LameDuckShutdown()
	} else {
		s.Shutdown()
	}
	s.WaitForShutdown()
}

// Restart starts node i again on its ports and store; it catches up with
// the others.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	up := c.nodes[i] != nil
	c.mu.Unlock()
	if up {
		return nil
	}
	return c.start(i)
}

// WaitReady waits until JetStream answers through every running node (a
// meta leader is elected and each node is part of it).
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, o := range c.opts {
		c.mu.Lock()
		up := c.nodes[i] != nil
		c.mu.Unlock()
		if !up {
			continue
		}
		for {
			if err := jsReady(fmt.Sprintf("nats://127.0.0.1:%d", o.Port)); err == nil {
				break
			} else if time.Now().After(deadline) {
				return fmt.Errorf("embedded cluster: JetStream not ready on %s: %w", o.ServerName, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func jsReady(u string) error {
	nc, err := nats.Connect(u, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for i := range c.opts {
		c.Stop(i, false)
	}
}
