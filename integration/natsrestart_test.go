package integration

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestNATSRestartMidIngest restarts the NATS server, on the same port and
// store, right after a burst of messages: the replica reconnects on its own
// and archives what came before and after exactly once. When the server
// stays down longer than the lock TTL, the replica loses its lock; its
// campaign takes it again and starts a new ingest term, which makes the
// consumer anew.
func TestNATSRestartMidIngest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ttl     time.Duration // the lock TTL
		down    time.Duration // how long the server stays down
		newTerm bool          // whether the ingest must start a new term
	}{
		// The replica is back within the TTL's renewal margin: it may keep
		// its lock and its consumer.
		{name: "at once, long TTL", ttl: 10 * time.Second},
		// The replica reconnects after nats.go's reconnect wait (2s), about
		// when the renewal of a 3s lock gives up (2/3 of the TTL after the
		// last renewal): it usually loses the lock and takes it again.
		{name: "at once, short TTL", ttl: 3 * time.Second},
		{name: "longer than the TTL", ttl: 3 * time.Second, down: 4 * time.Second, newTerm: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
				t.Fatal(err)
			}
			cfg := e.config(t)
			cfg.Index.LockTTL = service.Duration(tc.ttl)
			cfg.Block.TargetSize = 64 << 10
			r := startReplica(t, cfg)
			rd := e.reader(t, cfg)
			want := map[uint64]published{}
			publish(t, e.js, "orders", 0, 3000, want, nil)
			before := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS")

			down := time.Now()
			e.srv = restartNATS(t, e.srv, tc.down)
			t.Cleanup(func() { r.stop(t) }) // before the new server stops
			waitStream(t, e.js, "ORDERS", 30*time.Second)
			back := time.Now()
			publish(t, e.js, "orders", 3000, 3000, want, nil)
			rd.waitArchived(t, "ORDERS", uint64(len(want)), 30*time.Second)
			caughtUp := time.Since(back)
			checkArchive(t, rd, "ORDERS", want)
			waitAcked(t, e.js, "ORDERS", "nts-ORDERS", uint64(len(want)), 30*time.Second)

			h, _, err := rd.ix.Head(ctx, "ORDERS")
			if err != nil {
				t.Fatal(err)
			}
			if id, _, _ := rd.ix.Leader(ctx, "ORDERS"); h.Leader != r.id || id != r.id {
				t.Fatalf("head committed by %q, lock held by %q; the only replica is %q", h.Leader, id, r.id)
			}
			// Each term makes the consumer anew.
			after := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS")
			newTerm := after.Created.After(before.Created)
			if tc.newTerm && !newTerm {
				t.Fatalf("the consumer was made at %v, before the server went down at %v: the ingest did not start a new term",
					after.Created, down)
			}
			t.Logf("server down %v; archive caught up %v after it came back; new ingest term: %v",
				back.Sub(down).Round(time.Millisecond), caughtUp.Round(time.Millisecond), newTerm)
		})
	}
}

// restartNATS shuts s down and, after down, starts a server on the same port
// over the same store, as a restarted process would.
func restartNATS(t *testing.T, s *server.Server, down time.Duration) *server.Server {
	t.Helper()
	if down == 0 {
		return testenv.RestartNATS(t, s)
	}
	port := s.Addr().(*net.TCPAddr).Port
	storeDir := filepath.Dir(s.StoreDir()) // StoreDir is the "jetstream" dir inside
	s.Shutdown()
	s.WaitForShutdown()
	time.Sleep(down) // the outage itself
	return testenv.RunNATS(t, func(o *server.Options) {
		o.Port = port
		o.StoreDir = storeDir
	})
}

// waitStream waits until JetStream answers for stream.
func waitStream(t *testing.T, js jetstream.JetStream, stream string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.Stream(ctx, stream)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not back within %v: %v", stream, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
