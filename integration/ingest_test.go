package integration

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// published is what the test sent for one sequence.
type published struct {
	subject string
	header  nats.Header
	data    []byte
}

// publish sends n messages to stream's subjects "<prefix>.<i%7>" with binary
// payloads and, on every third, headers with a repeated key; it returns them
// by stream sequence.
// After each batch of 500 it calls pace (when not nil) with the last seq.
func publish(t *testing.T, js jetstream.JetStream, prefix string, from, n int, out map[uint64]published, pace func(last uint64)) {
	t.Helper()
	ctx := context.Background()
	var futures []jetstream.PubAckFuture
	var sent []published
	for i := from; i < from+n; i++ {
		m := nats.NewMsg(fmt.Sprintf("%s.%d", prefix, i%7))
		m.Data = bytes.Repeat([]byte{byte(i), byte(i >> 8), 0, 0xff}, i%50)
		if i%3 == 0 {
			m.Header.Add("Trace", fmt.Sprint(i))
			m.Header.Add("Trace", "again")
			m.Header.Set("Nats-Msg-Id", fmt.Sprintf("m-%d", i))
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
		sent = append(sent, published{m.Subject, m.Header, m.Data})
		if len(futures) == 500 || i == from+n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publish did not complete")
			}
			var last uint64
			for j, f := range futures {
				select {
				case ack := <-f.Ok():
					out[ack.Sequence] = sent[j]
					last = ack.Sequence
				case err := <-f.Err():
					t.Fatal(err)
				}
			}
			futures, sent = futures[:0], sent[:0]
			if pace != nil {
				pace(last)
			}
		}
	}
	_ = ctx
}

// keepUp returns a pace function that waits until the archive's consumer
// has acked (so the archive has committed) all but margin of what was
// published: the stream's limits drop old messages whether acked or not, and
// the test publishes no faster than the archive follows.
func keepUp(t *testing.T, js jetstream.JetStream, stream, consumer string, margin uint64) func(uint64) {
	return func(last uint64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			c, err := js.Consumer(context.Background(), stream, consumer)
			if err == nil {
				info, err := c.Info(context.Background())
				if err == nil && info.AckFloor.Stream+margin >= last {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the archive's consumer fell more than %d behind seq %d", margin, last)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func checkArchive(t *testing.T, r *reader, stream string, want map[uint64]published) {
	t.Helper()
	got := r.all(t, stream)
	if len(got) != len(want) {
		t.Fatalf("archive holds %d messages, %d were published", len(got), len(want))
	}
	var prev int64
	for _, m := range got {
		p, ok := want[m.Seq]
		if !ok {
			t.Fatalf("archive holds seq %d, never published", m.Seq)
		}
		if m.Subject != p.subject || !bytes.Equal(m.Data, p.data) {
			t.Fatalf("seq %d: got %q %x, published %q %x", m.Seq, m.Subject, m.Data, p.subject, p.data)
		}
		h, err := decodeHeader(m.Header)
		if err != nil {
			t.Fatalf("seq %d header: %v", m.Seq, err)
		}
		if fmt.Sprint(h) != fmt.Sprint(p.header) {
			t.Fatalf("seq %d header %v, published %v", m.Seq, h, p.header)
		}
		if m.Time < prev {
			t.Fatalf("seq %d time goes back", m.Seq)
		}
		prev = m.Time
	}
}

// decodeHeader parses NATS header bytes the way a subscriber would.
func decodeHeader(b []byte) (nats.Header, error) {
	if len(b) == 0 {
		return nats.Header{}, nil
	}
	return nats.DecodeHeadersMsg(b)
}

func TestArchiveKeepsWhatJetStreamDrops(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, MaxMsgs: 1000}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Block.TargetSize = 64 << 10 // ~600 messages: blocks seal well within the stream's 1000
	startReplica(t, cfg)
	want := map[uint64]published{}
	const n = 100_000
	publish(t, e.js, "events", 0, n, want, keepUp(t, e.js, "EVENTS", "nts-EVENTS", 900))
	info, err := e.js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if info.CachedInfo().State.Msgs > 1000 {
		t.Fatalf("JetStream holds %d messages; the test needs it to drop", info.CachedInfo().State.Msgs)
	}
	r := e.reader(t, cfg)
	r.waitArchived(t, "EVENTS", n, 2*time.Minute)
	checkArchive(t, r, "EVENTS", want)
}
