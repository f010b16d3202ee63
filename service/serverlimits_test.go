package service_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestIngestLargeMessages archives messages larger than the window the
// ingest fetches ahead by default, from a server whose max_payload allows
// them: a fetch that such a message cannot fit would never deliver it, and
// the stream's ingest would stop there.
func TestIngestLargeMessages(t *testing.T) {
	nc, js, _ := streamServer(t, jetstream.StreamConfig{Name: "HUGE"}, func(o *server.Options) { o.MaxPayload = 12 << 20 })
	ctx := t.Context()
	sent := map[uint64][]byte{}
	for i, size := range []int{100, 10 << 20, 100, 6 << 20, 5 << 20, 100} {
		data := bytes.Repeat([]byte{byte(i + 1)}, size)
		ack, err := js.Publish(ctx, "HUGE.x", data)
		if err != nil {
			t.Fatal(err)
		}
		sent[ack.Sequence] = data
	}
	archiveAll(t, nc, js, "HUGE", uint64(len(sent)))
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
// refused, and neither the stream's ingest nor the replica's view of the
// index would ever start.
func TestIngestServerPullLimits(t *testing.T) {
	nc, js, _ := streamServer(t, jetstream.StreamConfig{Name: "LIMITED"}, func(o *server.Options) { o.JetStreamLimits.MaxRequestBatch = 50 })
	const n = 1000
	publishRange(t, js, "LIMITED.x", 0, n)
	archiveAll(t, nc, js, "LIMITED", n)
}

// TestIndexMaxBytes runs a replica in an account that requires max_bytes on
// every stream: without index.max_bytes it cannot create its buckets and
// says so; with it, it archives.
func TestIndexMaxBytes(t *testing.T) {
	srv := testenv.RunNATS(t)
	if err := srv.GlobalAccount().UpdateJetStreamLimits(map[string]server.JetStreamAccountLimits{"": {
		MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1, MaxAckPending: -1,
		MemoryMaxStreamBytes: -1, StoreMaxStreamBytes: -1, MaxBytesRequired: true,
	}}); err != nil {
		t.Fatal(err)
	}
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BOUND", Subjects: []string{"BOUND.>"}, MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	publishRange(t, js, "BOUND.x", 0, 10)
	cfg := archiveConfig(t, srv.ClientURL(), "BOUND")
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = service.Run(rctx, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "open the index") || !strings.Contains(err.Error(), "set index.max_bytes") {
		t.Fatalf("Run without index.max_bytes: %v, want the index's error naming index.max_bytes", err)
	}
	archiveAll(t, nc, js, "BOUND", 10, func(c *service.Config) { c.Index.MaxBytes = 8 << 20 })
	for _, b := range []string{"nts_index", "nts_index_locks"} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxBytes; got != 8<<20 {
			t.Fatalf("bucket %s: max_bytes %d, want %d", b, got, 8<<20)
		}
	}
}
