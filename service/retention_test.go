package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestInterestStreamRestart archives an Interest-retention stream whose
// other consumer acks everything, across a restart of nts: the messages
// published while nts was down must all reach the archive, although the
// other consumer acked them first.
func TestInterestStreamRestart(t *testing.T) {
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INT", Subjects: []string{"INT.>"}, Retention: jetstream.InterestPolicy})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := other.Consume(func(m jetstream.Msg) { _ = m.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := js.Publish(ctx, "INT.x", fmt.Appendf(nil, "message %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}

	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: "INT"}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(100 * time.Millisecond)
	cfg.Complete()
	ix, err := index.Open(ctx, js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	wait := func(n uint64) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := ix.WaitFor(wctx, "INT", n); err != nil {
			t.Fatalf("INT not archived to %d: %v", n, err)
		}
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- service.Run(rctx, cfg, nil) }()
	// nts follows the stream from when its consumer is there.
	checkFor(t, 10*time.Second, func() error {
		_, err := s.Consumer(ctx, "nts-INT")
		return err
	})
	publish(0, 100)
	wait(100)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	publish(100, 200) // acked by the other consumer while nts is down
	checkFor(t, 10*time.Second, func() error {
		info, err := other.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 200 {
			return fmt.Errorf("other consumer acked to %d", info.AckFloor.Stream)
		}
		return nil
	})
	runReplica(t, cfg, nil)
	wait(200)
	for seq := uint64(101); seq <= 200; seq++ {
		if _, ok := ix.Lookup("INT", seq); !ok {
			t.Fatalf("seq %d is not in the archive", seq)
		}
	}
}

// TestWorkQueueMirror archives a WorkQueue stream from its mirror: nts never
// consumes the work itself, archives what a worker takes too, and purges
// from the mirror what the archive holds.
func TestWorkQueueMirror(t *testing.T) {
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "JOBS", Subjects: []string{"JOBS.>"}, Retention: jetstream.WorkQueuePolicy})
	if err != nil {
		t.Fatal(err)
	}
	cfg := service.Config{DataDir: t.TempDir(), Streams: []service.StreamSpec{{Name: "JOBS"}}}
	cfg.NATS.URL = srv.ClientURL()
	cfg.Block.MaxLinger = service.Duration(100 * time.Millisecond)
	cfg.Complete()
	runReplica(t, cfg, nil)
	ix, err := index.Open(ctx, js, index.Options{Bucket: cfg.Index.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var mirror jetstream.Stream
	checkFor(t, 10*time.Second, func() (err error) {
		mirror, err = js.Stream(ctx, "NTS_MIRROR_JOBS")
		return err
	})
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := js.Publish(ctx, "JOBS.x", fmt.Appendf(nil, "job %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(n uint64) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := ix.WaitFor(wctx, "JOBS", n); err != nil {
			t.Fatalf("JOBS not archived to %d: %v", n, err)
		}
	}

	publish(0, 100)
	wait(100)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 100 {
		t.Fatalf("JOBS holds %d messages after archiving, want its 100", info.State.Msgs)
	}
	if _, err := s.Consumer(ctx, "nts-JOBS"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("nts's consumer on JOBS itself: %v, want none", err)
	}
	// A worker takes the work; what comes after is archived all the same.
	worker, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := worker.Consume(func(m jetstream.Msg) { _ = m.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	publish(100, 200)
	wait(200)
	for seq := uint64(1); seq <= 200; seq++ {
		if _, ok := ix.Lookup("JOBS", seq); !ok {
			t.Fatalf("seq %d is not in the archive", seq)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		mi, err := mirror.Info(ctx)
		if err != nil {
			return err
		}
		if mi.State.Msgs != 0 || mi.State.FirstSeq != 201 {
			return fmt.Errorf("mirror holds %d messages from %d, want none: the archive holds them", mi.State.Msgs, mi.State.FirstSeq)
		}
		return nil
	})
}
