package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// TestInterestStreamRestart archives an Interest-retention stream whose
// other consumer acks everything, across a restart of nts: the messages
// published while nts was down must all reach the archive, although the
// other consumer acked them first.
func TestInterestStreamRestart(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "INT", Retention: jetstream.InterestPolicy})
	ctx := t.Context()
	other := ackEverything(t, s, "other")
	cfg := archiveConfig(t, nc.ConnectedUrl(), "INT")
	ix := openIndex(t, js, cfg)

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- service.Run(rctx, cfg, nil) }()
	// nts follows the stream from when its consumer is there.
	checkFor(t, 10*time.Second, func() error {
		_, err := s.Consumer(ctx, "nts-INT")
		return err
	})
	publishRange(t, js, "INT.x", 0, 100)
	waitArchived(t, ix, "INT", 100)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	publishRange(t, js, "INT.x", 100, 200) // acked by the other consumer while nts is down
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
	waitArchived(t, ix, "INT", 200)
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
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "JOBS", Retention: jetstream.WorkQueuePolicy})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "JOBS")
	runReplica(t, cfg, nil)
	ix := openIndex(t, js, cfg)
	var mirror jetstream.Stream
	checkFor(t, 10*time.Second, func() (err error) {
		mirror, err = js.Stream(ctx, "NTS_MIRROR_JOBS")
		return err
	})

	publishRange(t, js, "JOBS.x", 0, 100)
	waitArchived(t, ix, "JOBS", 100)
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
	ackEverything(t, s, "worker")
	publishRange(t, js, "JOBS.x", 100, 200)
	waitArchived(t, ix, "JOBS", 200)
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

// ackEverything makes a durable consumer of s that acks every message it
// gets until the test ends.
func ackEverything(t *testing.T, s jetstream.Stream, name string) jetstream.Consumer {
	t.Helper()
	c, err := s.CreateConsumer(t.Context(), jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consume(func(m jetstream.Msg) { _ = m.Ack() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return c
}
