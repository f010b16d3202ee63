package service

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
)

// pullEnv is a stream "PULL" (subject "pull") and an AckAll consumer "C"
// of it, acked never and with no bound on what is unacked, on an embedded
// server.
type pullEnv struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newPullEnv(t *testing.T, cons jetstream.ConsumerConfig) *pullEnv {
	t.Helper()
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PULL", Subjects: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}
	cons.Durable, cons.AckPolicy, cons.MaxAckPending = "C", jetstream.AckAllPolicy, -1
	if _, err := js.CreateConsumer(ctx, "PULL", cons); err != nil {
		t.Fatal(err)
	}
	return &pullEnv{srv: srv, nc: nc, js: js}
}

func (e *pullEnv) publish(t *testing.T, n, size int) {
	t.Helper()
	for range n {
		if _, err := e.js.Publish(context.Background(), "pull", make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
}

// pulled is what a puller handed over.
type pulled struct {
	mu     sync.Mutex
	seqs   []uint64
	cseqs  []uint64
	maxBuf int // most bytes the subscription held at a delivery
	got    chan struct{}
	errs   chan error
}

func newPulled() *pulled {
	return &pulled{got: make(chan struct{}, 1<<16), errs: make(chan error, 1)}
}

// start runs a puller of stream PULL's consumer over cfg (consumer C
// unless cfg names another) until the test ends.
func (pl *pulled) start(t *testing.T, nc *nats.Conn, cfg pullConfig, log *slog.Logger) *puller {
	t.Helper()
	cfg.stream, cfg.consumer = "PULL", cmp.Or(cfg.consumer, "C")
	var p *puller
	var ready sync.WaitGroup
	ready.Add(1)
	p, err := newPuller(nc, jetstream.DefaultAPIPrefix, cfg, func(m *nats.Msg) {
		ready.Wait()
		meta, err := parseAck(m.Reply)
		if err != nil {
			t.Error(err)
			return
		}
		_, buf, _ := p.sub.Pending()
		pl.mu.Lock()
		pl.seqs, pl.cseqs = append(pl.seqs, meta.seq), append(pl.cseqs, meta.cseq)
		pl.maxBuf = max(pl.maxBuf, buf)
		pl.mu.Unlock()
		pl.got <- struct{}{}
	}, func(err error) { pl.errs <- err }, log)
	if err != nil {
		t.Fatal(err)
	}
	ready.Done()
	t.Cleanup(p.Stop)
	return p
}

// wait waits for n more deliveries.
func (pl *pulled) wait(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for i := range n {
		select {
		case <-pl.got:
		case err := <-pl.errs:
			t.Fatalf("after %d of %d deliveries: puller failed: %v", i, n, err)
		case <-deadline:
			t.Fatalf("%d of %d deliveries within %v", i, n, within)
		}
	}
}

// failed waits up to 10s for the puller to fail, with an error that want
// accepts; what describes the failure expected.
func (pl *pulled) failed(t *testing.T, what string, want func(error) bool) {
	t.Helper()
	select {
	case err := <-pl.errs:
		if !want(err) {
			t.Fatalf("failed with %v, want %s", err, what)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no failure within 10s, want %s", what)
	}
}

// inOrder checks that seqs 1..n came once each, in order, with consumer
// sequences 1..n.
func (pl *pulled) inOrder(t *testing.T, n int) {
	t.Helper()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.seqs) != n {
		t.Fatalf("%d deliveries, want %d", len(pl.seqs), n)
	}
	for i := range n {
		if pl.seqs[i] != uint64(i+1) || pl.cseqs[i] != uint64(i+1) {
			t.Fatalf("delivery %d: stream seq %d, consumer seq %d; want %d", i, pl.seqs[i], pl.cseqs[i], i+1)
		}
	}
}

// TestPullerWindow drains a backlog many times the window: every message
// comes once, in order, and the client never holds more than the window.
func TestPullerWindow(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	const n, size, window = 3000, 200, 16 << 10
	e.publish(t, n, size)
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: window}, slog.New(slog.DiscardHandler))
	pl.wait(t, n, 30*time.Second)
	pl.inOrder(t, n)
	if pl.maxBuf > window {
		t.Fatalf("the client held %d bytes fetched ahead, window %d", pl.maxBuf, window)
	}
}

// TestPullerPendingLimits: the subscription holds two windows, however
// large, before the client drops deliveries as a slow consumer.
func TestPullerPendingLimits(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	for _, window := range []int{pullBytes, 64 << 20} {
		p := newPulled().start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: window}, slog.New(slog.DiscardHandler))
		msgs, bytes, err := p.sub.PendingLimits()
		if err != nil {
			t.Fatal(err)
		}
		if msgs >= 0 || bytes < 2*window {
			t.Fatalf("window %d: pending limits %d messages, %d bytes; want no message limit and two windows", window, msgs, bytes)
		}
		p.Stop()
	}
}

// TestPullerBatchLimit drains a consumer whose pull requests may ask for 7
// messages at most, with a window of 7.
func TestPullerBatchLimit(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{MaxRequestBatch: 7})
	const n = 100
	e.publish(t, n, 10)
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: 7, maxBytes: pullBytes}, slog.New(slog.DiscardHandler))
	pl.wait(t, n, 30*time.Second)
	pl.inOrder(t, n)
}

// TestPullerRefused: a request over the consumer's limits ends the
// fetching with the server's reason.
func TestPullerRefused(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{MaxRequestBatch: 5})
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: 50, maxBytes: pullBytes}, slog.New(slog.DiscardHandler))
	pl.failed(t, "the server's MaxRequestBatch refusal", func(err error) bool {
		return strings.Contains(err.Error(), "Exceeded MaxRequestBatch")
	})
}

// TestPullerConsumerDeleted: deleting the consumer ends the fetching.
func TestPullerConsumerDeleted(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: pullBytes}, slog.New(slog.DiscardHandler))
	e.publish(t, 1, 10)
	pl.wait(t, 1, 10*time.Second)
	if err := e.js.DeleteConsumer(context.Background(), "PULL", "C"); err != nil {
		t.Fatal(err)
	}
	pl.failed(t, "ErrConsumerDeleted", func(err error) bool { return errors.Is(err, jetstream.ErrConsumerDeleted) })
}

// TestPullerTooLarge: a message larger than the whole window ends the
// fetching with a clear error rather than asking again and again.
func TestPullerTooLarge(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	e.publish(t, 1, 4096)
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: 1024}, slog.New(slog.DiscardHandler))
	pl.failed(t, "a message too large for the window", func(err error) bool {
		return strings.Contains(err.Error(), "does not fit the fetch window")
	})
}

// TestPullerExpiry leaves the stream idle for several request lifetimes:
// each expired request is renewed at once, never by the heartbeat watch,
// and a message published afterwards comes.
func TestPullerExpiry(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: pullBytes, expires: time.Second, heartbeat: 400 * time.Millisecond}, log)
	time.Sleep(3500 * time.Millisecond)
	e.publish(t, 1, 10)
	pl.wait(t, 1, 2*time.Second)
	if s := logs.String(); strings.Contains(s, "no heartbeat") {
		t.Fatalf("a request was renewed by the heartbeat watch, not on expiry:\n%s", s)
	}
}

// TestPullerReconnect restarts the server, which forgets the pull
// requests: the puller asks anew on reconnecting, well before a heartbeat
// would be missed.
func TestPullerReconnect(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{maxMsgs: pullMsgs, maxBytes: pullBytes}, slog.New(slog.DiscardHandler))
	e.publish(t, 1, 10)
	pl.wait(t, 1, 10*time.Second)
	testenv.RestartNATS(t, e.srv)
	deadline := time.Now().Add(10 * time.Second)
	for !e.nc.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The stream may need a moment after the restart before it takes
	// messages again.
	for {
		if _, err := e.js.Publish(context.Background(), "pull", []byte("x")); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pl.wait(t, 1, 5*time.Second)
	pl.inOrder(t, 2)
}

// TestPullerStopWaitsForHandler: Stop returns only once the handler has
// returned, and no delivery comes after.
func TestPullerStopWaitsForHandler(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	e.publish(t, 10, 10)
	in, release := make(chan struct{}, 10), make(chan struct{})
	var mu sync.Mutex
	stopped := false
	p, err := newPuller(e.nc, jetstream.DefaultAPIPrefix, pullConfig{stream: "PULL", consumer: "C", maxMsgs: pullMsgs, maxBytes: pullBytes},
		func(*nats.Msg) {
			mu.Lock()
			if stopped {
				t.Error("a delivery after Stop returned")
			}
			mu.Unlock()
			in <- struct{}{}
			<-release
		}, func(err error) { t.Error(err) }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	<-in
	done := make(chan struct{})
	go func() {
		p.Stop()
		mu.Lock()
		stopped = true
		mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Stop returned while the handler was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after the handler did")
	}
}

// TestLeftOver reads a status's pending counts and refuses bad ones.
func TestLeftOver(t *testing.T) {
	status := func(msgs, bytes string) *nats.Msg {
		m := nats.NewMsg("inbox")
		m.Header.Set("Status", "408")
		if msgs != "" {
			m.Header.Set("Nats-Pending-Messages", msgs)
		}
		if bytes != "" {
			m.Header.Set("Nats-Pending-Bytes", bytes)
		}
		return m
	}
	if m, b, err := leftOver(status("12", "3400")); err != nil || m != 12 || b != 3400 {
		t.Fatalf("leftOver = %d, %d, %v; want 12, 3400", m, b, err)
	}
	if m, b, err := leftOver(status("", "")); err != nil || m != 0 || b != 0 {
		t.Fatalf("leftOver of no counts = %d, %d, %v; want 0, 0", m, b, err)
	}
	for _, bad := range [][2]string{{"x", "1"}, {"1", "-5"}, {"1e3", ""}} {
		if _, _, err := leftOver(status(bad[0], bad[1])); err == nil {
			t.Fatalf("leftOver(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestPullerConsumerGone: pull requests for a consumer that is not there
// find no responders; after a few tries the fetching ends, so that the next
// term makes the consumer anew.
func TestPullerConsumerGone(t *testing.T) {
	e := newPullEnv(t, jetstream.ConsumerConfig{})
	pl := newPulled()
	pl.start(t, e.nc, pullConfig{consumer: "MISSING", maxMsgs: pullMsgs, maxBytes: pullBytes, retry: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	pl.failed(t, "errConsumerGone", func(err error) bool { return errors.Is(err, errConsumerGone) })
}

// TestAPIPrefix: the puller's next-message subject follows the JetStream
// context's API prefix or domain, as jetstream builds its own.
func TestAPIPrefix(t *testing.T) {
	for _, tc := range []struct {
		opts jetstream.JetStreamOptions
		want string
	}{
		{jetstream.JetStreamOptions{}, "$JS.API."},
		{jetstream.JetStreamOptions{APIPrefix: "$JS.API."}, "$JS.API."},
		{jetstream.JetStreamOptions{APIPrefix: "$JS.hub.API"}, "$JS.hub.API."},
		{jetstream.JetStreamOptions{Domain: "leaf"}, "$JS.leaf.API."},
	} {
		if got := apiPrefix(tc.opts); got != tc.want {
			t.Errorf("apiPrefix(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
	nc := testenv.Connect(t, testenv.RunNATS(t))
	for _, tc := range []struct {
		mk   func() (jetstream.JetStream, error)
		want string
	}{
		{func() (jetstream.JetStream, error) { return jetstream.New(nc) }, "$JS.API."},
		{func() (jetstream.JetStream, error) { return jetstream.NewWithDomain(nc, "leaf") }, "$JS.leaf.API."},
		{func() (jetstream.JetStream, error) { return jetstream.NewWithAPIPrefix(nc, "$JS.hub.API") }, "$JS.hub.API."},
	} {
		js, err := tc.mk()
		if err != nil {
			t.Fatal(err)
		}
		if got := apiPrefix(js.Options()); got != tc.want {
			t.Errorf("apiPrefix of %+v = %q, want %q", js.Options(), got, tc.want)
		}
	}
}
