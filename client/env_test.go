package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// env is an embedded NATS server with JetStream and, once run is called,
// an nts replica archiving every stream and a client.
type env struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	c   *client.Client
	cfg service.Config
}

// newEnv starts NATS, with opts applied to its options, until the test
// ends.
func newEnv(t testing.TB, opts ...func(*server.Options)) *env {
	t.Helper()
	srv := testenv.RunNATS(t, opts...)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, nc: nc, js: js}
}

// run starts an nts replica (small blocks sealed after 50ms, all three
// tiers) until the test ends, and a client of it. Each of opts may change
// the replica's configuration.
//
// The replica lists the streams there are when it starts, then learns of
// new ones from JetStream's creation advisories; nats-server sends an
// advisory before the stream shows in its listings, so a stream created
// later may wait for the replica's next rescan. Tests create their streams
// and buckets first.
func (e *env) run(t testing.TB, opts ...func(*service.Config)) {
	t.Helper()
	e.cfg = replicaConfig(t, e.srv.ClientURL(), opts...)
	e.c = client.New(e.nc, client.WithPrefix(e.cfg.Service.Prefix))
	runReplica(t, e.cfg)
	checkFor(t, 10*time.Second, func() error {
		_, err := e.nc.Request(e.cfg.Service.Prefix+".streams", nil, time.Second)
		return err
	})
}

// replicaConfig is the configuration of a replica of the tests.
func replicaConfig(t testing.TB, url string, opts ...func(*service.Config)) service.Config {
	t.Helper()
	c := service.Config{DataDir: t.TempDir()}
	c.NATS.URL = url
	c.Block.TargetSize = 64 << 10
	c.Block.FrameSize = 16 << 10
	c.Block.MaxLinger = service.Duration(50 * time.Millisecond)
	c.Service.RequestTimeout = service.Duration(10 * time.Second)
	for _, o := range opts {
		o(&c)
	}
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// runReplica runs an nts replica until the test ends.
func runReplica(t testing.TB, cfg service.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replica: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("replica did not stop")
		}
	})
}

// waitArchived waits until nts has archived stream up to seq.
func (e *env) waitArchived(t testing.TB, stream string, seq uint64) {
	t.Helper()
	checkFor(t, 20*time.Second, func() error {
		m, err := e.nc.Request(e.cfg.Service.Prefix+".stream."+stream, nil, time.Second)
		if err != nil {
			return err
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			return fmt.Errorf("%s %s", code, m.Header.Get(micro.ErrorHeader))
		}
		var info service.StreamInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			return err
		}
		if info.LastSeq < seq {
			return fmt.Errorf("%s archived up to %d, want %d", stream, info.LastSeq, seq)
		}
		return nil
	})
}

// stream creates a stream.
func (e *env) stream(t testing.TB, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	s, err := e.js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publish publishes msgs and returns them as JetStream stores them, by
// sequence: with their sequence and stored time.
func (e *env) publish(t testing.TB, stream string, msgs []*nats.Msg) map[uint64]*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*jetstream.RawStreamMsg{}
	for _, m := range msgs {
		ack, err := e.js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		out[ack.Sequence] = stored
	}
	return out
}

// sameMsg checks that got, served by the client, is want as JetStream
// stored it; fromArchive says whether nts must have served it.
func sameMsg(t testing.TB, got, want *jetstream.RawStreamMsg, fromArchive bool) {
	t.Helper()
	if got == nil {
		t.Fatalf("seq %d: no message", want.Sequence)
	}
	if got.Sequence != want.Sequence || got.Subject != want.Subject || !got.Time.Equal(want.Time) || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("seq %d: got seq %d subject %q time %v %d bytes; want subject %q time %v %d bytes",
			want.Sequence, got.Sequence, got.Subject, got.Time, len(got.Data), want.Subject, want.Time, len(want.Data))
	}
	tier := got.Header.Get(client.HeaderTier)
	if fromArchive != (tier != "") {
		t.Fatalf("seq %d: %s %q, from the archive: %v", want.Sequence, client.HeaderTier, tier, fromArchive)
	}
	n := 0
	for k, vs := range got.Header {
		if k == client.HeaderTier {
			continue
		}
		n++
		if fmt.Sprint(vs) != fmt.Sprint(want.Header.Values(k)) {
			t.Fatalf("seq %d: header %s = %q, want %q", want.Sequence, k, vs, want.Header.Values(k))
		}
	}
	if n != len(want.Header) {
		t.Fatalf("seq %d: headers %v, want %v", want.Sequence, got.Header, want.Header)
	}
}

// checkFor calls f until it returns nil, failing the test with f's error
// after d.
func checkFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testMsgs returns n messages on "<subject>.<i%3>" with varied payloads
// and headers: an empty payload, a repeated header key, every byte value.
func testMsgs(subject string, n int) []*nats.Msg {
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		m := nats.NewMsg(fmt.Sprintf("%s.%d", subject, i%3))
		switch i % 4 {
		case 0:
			m.Data = bytes.Repeat([]byte{byte(i)}, 100+i)
		case 1:
			m.Header.Add("Trace", fmt.Sprint("t", i))
			m.Header.Add("Trace", "again")
			m.Data = []byte(fmt.Sprintf("message %d", i))
		case 2: // an empty payload, no header
		case 3:
			m.Header.Set("X-Bin", "yes")
			m.Data = make([]byte, 256)
			for j := range m.Data {
				m.Data[j] = byte(j + i)
			}
		}
		msgs[i] = m
	}
	return msgs
}
