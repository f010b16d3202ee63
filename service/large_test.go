package service_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestIngestLargeMessages archives messages larger than the window the
// ingest fetches ahead by default, from a server whose max_payload allows
// them: a fetch that such a message cannot fit would never deliver it, and
// the stream's ingest would stop there.
func TestIngestLargeMessages(t *testing.T) {
	const maxPayload = 12 << 20
	srv := testenv.RunNATS(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HUGE", Subjects: []string{"huge.>"}}); err != nil {
		t.Fatal(err)
	}
	sent := map[uint64][]byte{}
	for i, size := range []int{100, 10 << 20, 100, 6 << 20, 5 << 20, 100} {
		data := bytes.Repeat([]byte{byte(i + 1)}, size)
		ack, err := js.Publish(ctx, "huge.x", data)
		if err != nil {
			t.Fatal(err)
		}
		sent[ack.Sequence] = data
	}

	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: "HUGE"}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(200 * time.Millisecond)
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	runReplica(t, cfg, nil)
	ix, err := index.Open(ctx, js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ix.WaitFor(wctx, "HUGE", uint64(len(sent))); err != nil {
		t.Fatalf("HUGE not archived: %v", err)
	}
	for seq, data := range sent {
		var m *nats.Msg
		checkFor(t, 10*time.Second, func() (err error) {
			m, err = nc.Request(fmt.Sprintf("nts.get.HUGE.%d", seq), nil, 10*time.Second)
			return err
		})
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("seq %d: error %s %s", seq, code, m.Header.Get(micro.ErrorHeader))
		}
		if !bytes.Equal(m.Data, data) {
			t.Fatalf("seq %d: %d bytes read back, %d published", seq, len(m.Data), len(data))
		}
	}
}

// TestIngestServerPullLimits archives a stream from a server that limits
// pull requests (jetstream limits max_request_batch, which every pull
// consumer inherits): a request for more messages than the limit is
// refused, and the stream's ingest would never start.
func TestIngestServerPullLimits(t *testing.T) {
	srv := testenv.RunNATS(t, func(o *server.Options) { o.JetStreamLimits.MaxRequestBatch = 50 })
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LIMITED", Subjects: []string{"limited.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		if _, err := js.PublishAsync("limited.x", fmt.Appendf(nil, "message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: "LIMITED"}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(200 * time.Millisecond)
	cfg.Complete()
	runReplica(t, cfg, nil)
	ix, err := index.Open(ctx, js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ix.WaitFor(wctx, "LIMITED", n); err != nil {
		t.Fatalf("LIMITED not archived: %v", err)
	}
}
