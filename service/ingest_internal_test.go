package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/internal/testenv"
)

// TestDeliveryGap hands add real deliveries of a consumer with the second
// one missing, as a client that dropped it would: add refuses the third
// rather than put a hole in the block, and the builder keeps the first.
func TestDeliveryGap(t *testing.T) {
	ctx := context.Background()
	msgs := deliveries(t, "GAP", 3, 1)
	b, err := block.NewBuilder(block.Options{Stream: "GAP"})
	if err != nil {
		t.Fatal(err)
	}
	in := &ingest{log: slog.New(slog.DiscardHandler), pol: policy{archive: "GAP"}, stats: &StreamStats{}}
	tm := &term{b: b}
	if _, added, err := in.add(ctx, tm, msgs[0]); err != nil || !added {
		t.Fatalf("first delivery: added %v, %v", added, err)
	}
	if _, added, err := in.add(ctx, tm, msgs[2]); !errors.Is(err, errDeliveryLost) || added {
		t.Fatalf("third delivery after a lost second: added %v, %v; want errDeliveryLost", added, err)
	}
	if b.Len() != 1 || b.LastSeq() != 1 || tm.delivered != 1 {
		t.Fatalf("builder holds %d messages up to %d, delivered %d; want the first only", b.Len(), b.LastSeq(), tm.delivered)
	}
}

// TestQuietBacklogSeal hands handle the deliveries of a backlog stored
// longer ago than a stream must be quiet, with max_linger an hour: the
// builder, holding more than a quarter of its target, is handed over as
// the last message comes, not a quiet period later.
func TestQuietBacklogSeal(t *testing.T) {
	ctx := context.Background()
	const n = 10
	msgs := deliveries(t, "QUIET", n, 512)
	time.Sleep(idleAfter(time.Hour) + 50*time.Millisecond) // the backlog ages
	in, tm, spare := sealTerm(t, "QUIET", 16<<10, time.Hour)
	for _, m := range msgs {
		if err := in.handle(ctx, tm, m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case job := <-tm.jobs:
		if job.b.Len() != n || job.b.LastSeq() != n {
			t.Fatalf("handed over %d messages up to %d, want all %d", job.b.Len(), job.b.LastSeq(), n)
		}
	default:
		t.Fatal("the backlog's last block was not handed over when its last message came")
	}
	if tm.b != spare || tm.b.Len() != 0 || tm.linger != nil {
		t.Fatal("the term did not move on to the spare builder")
	}
}

// TestCaughtUpSeal hands handle a backlog far below a quarter of the
// target size. Stored more than max_linger ago, it is handed over as its
// last message comes, and not before; stored just now, it waits for its
// linger; and the age is counted by the server's clock, as the term's skew
// estimates it.
func TestCaughtUpSeal(t *testing.T) {
	ctx := context.Background()
	const n, linger = 10, 200 * time.Millisecond
	handed := func(in *ingest, tm *term, msgs []*nats.Msg) *sealJob {
		t.Helper()
		for i, m := range msgs {
			if err := in.handle(ctx, tm, m); err != nil {
				t.Fatal(err)
			}
			select {
			case job := <-tm.jobs:
				if i != len(msgs)-1 {
					t.Fatalf("handed over at message %d of %d, with more pending", i+1, len(msgs))
				}
				return job
			default:
			}
		}
		return nil
	}

	old := deliveries(t, "AGED", n, 512)
	time.Sleep(linger + 50*time.Millisecond)
	in, tm, _ := sealTerm(t, "AGED", 64<<10, linger)
	job := handed(in, tm, old)
	if job == nil || job.b.Len() != n {
		t.Fatal("a backlog stored more than max_linger ago was not handed over as its last message came")
	}
	if tm.linger != nil {
		t.Fatal("the handed over builder's linger timer is still armed")
	}

	fresh := deliveries(t, "FRESH", n, 512)
	in, tm, _ = sealTerm(t, "FRESH", 64<<10, time.Hour)
	if job := handed(in, tm, fresh); job != nil {
		t.Fatal("fresh messages below a quarter of the target were handed over before max_linger")
	}

	// The same messages, with a server clock two hours ahead of ours:
	// stored two hours ago by it.
	in, tm, _ = sealTerm(t, "FRESH", 64<<10, time.Hour)
	tm.skew = 2 * time.Hour
	if job := handed(in, tm, fresh); job == nil {
		t.Fatal("the term's skew was not applied to the messages' age")
	}
}

func TestServerSkew(t *testing.T) {
	sent := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := sent.Add(10 * time.Millisecond)
	for _, tc := range []struct {
		ts   time.Time
		want time.Duration
	}{
		{time.Time{}, 0},
		{sent.Add(5 * time.Millisecond), 0},
		{sent.Add(time.Minute), time.Minute - 5*time.Millisecond},
		{sent.Add(-time.Minute), -time.Minute - 5*time.Millisecond},
	} {
		if d := serverSkew(sent, got, tc.ts); d != tc.want {
			t.Errorf("serverSkew(ts %v) = %v, want %v", tc.ts, d, tc.want)
		}
	}
}

// sealTerm returns an ingest of stream with the given linger and a term
// filling a builder of target size, with one spare builder (also returned)
// and room for one job.
func sealTerm(t *testing.T, stream string, target int64, linger time.Duration) (*ingest, *term, *block.Builder) {
	t.Helper()
	opts := block.Options{Stream: stream, TargetSize: target}
	b, err := block.NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	spare, err := block.NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	in := &ingest{log: slog.New(slog.DiscardHandler), pol: policy{archive: stream, linger: linger}, stats: &StreamStats{}}
	tm := &term{b: b, jobs: make(chan *sealJob, 1), free: make(chan *block.Builder, 1)}
	tm.free <- spare
	t.Cleanup(func() {
		if tm.linger != nil {
			tm.linger.Stop()
		}
	})
	return in, tm, spare
}

// deliveries publishes n messages of size bytes to a new stream and returns
// them as an AckAll consumer delivers them, fetched with one pull request.
func deliveries(t *testing.T, stream string, n, size int) []*nats.Msg {
	t.Helper()
	ctx := context.Background()
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subject := strings.ToLower(stream)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := js.Publish(ctx, subject, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	next := jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + stream + "." + cons.CachedInfo().Name
	if err := nc.PublishRequest(next, inbox, fmt.Appendf(nil, `{"batch":%d}`, n)); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for range n {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d deliveries: %v", len(msgs), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}
