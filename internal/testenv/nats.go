package testenv

import (
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsReadyTimeout bounds how long a server may take to accept connections.
const natsReadyTimeout = 10 * time.Second

// natsOptions remembers the option functions each running server was started
// with, so RestartNATS can start its successor the same way.
var natsOptions sync.Map // *server.Server -> []func(*server.Options)

// RunNATS starts an embedded nats-server with JetStream for the test: its
// store under t.TempDir(), listening on 127.0.0.1 on a random port, without
// logs or signal handlers. Each of opts may change the options before the
// server starts. The server is shut down, and waited for, when the test ends.
func RunNATS(t testing.TB, opts ...func(*server.Options)) *server.Server {
	t.Helper()
	return startNATS(t, t.TempDir(), -1, opts)
}

// RestartNATS shuts s down and starts a new server on the same port with the
// same store directory and options, as a restarted process would. The new
// server is shut down when the test ends. Clients connected with Connect
// reconnect to it on their own.
func RestartNATS(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	v, ok := natsOptions.Load(s)
	if !ok {
		t.Fatalf("testenv: server %s was not started by RunNATS", s.Name())
	}
	opts := v.([]func(*server.Options))
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("testenv: server %s has no TCP listener", s.Name())
	}
	// StoreDir reports the "jetstream" directory JetStream made inside the
	// configured one.
	storeDir := filepath.Dir(s.StoreDir())
	s.Shutdown()
	s.WaitForShutdown()
	natsOptions.Delete(s)
	return startNATS(t, storeDir, addr.Port, opts)
}

func startNATS(t testing.TB, storeDir string, port int, opts []func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  storeDir,
		NoLog:     true,
		NoSigs:    true,
	}
	for _, opt := range opts {
		opt(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("testenv: new nats-server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		natsOptions.Delete(s)
	})
	if !s.ReadyForConnections(natsReadyTimeout) {
		t.Fatalf("testenv: nats-server not ready for connections within %v", natsReadyTimeout)
	}
	natsOptions.Store(s, opts)
	return s
}

// Connect connects to s and closes the connection when the test ends. The
// connection reconnects without limit, every 50ms, so it survives
// RestartNATS; opts are applied after these defaults.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
