package service_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestReaderMovesCursor: the ingest reads through an AckNone reader while
// the durable consumer, never fetched from, is moved past each committed
// block, only ever forward and never past the archive's head.
func TestReaderMovesCursor(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "R"})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "R", func(c *service.Config) {
		c.Block.TargetSize = 64 << 10
		c.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	})
	runReplica(t, cfg, nil)
	ix := openIndex(t, js, cfg)

	var reader jetstream.Consumer
	checkFor(t, 10*time.Second, func() (err error) {
		reader, err = s.Consumer(ctx, "nts-R-reader")
		return err
	})
	rc := reader.CachedInfo().Config
	if rc.AckPolicy != jetstream.AckNonePolicy || !rc.MemoryStorage || rc.InactiveThreshold <= 0 || rc.Durable != "" {
		t.Fatalf("reader: ack %v, memory %v, inactive threshold %v, durable %q; want none, true, > 0, none",
			rc.AckPolicy, rc.MemoryStorage, rc.InactiveThreshold, rc.Durable)
	}
	cursor, err := s.Consumer(ctx, "nts-R")
	if err != nil {
		t.Fatal(err)
	}

	// While messages go in, the cursor's ack floor only rises, stays within
	// the archive's head, and the durable consumer delivers nothing.
	const n = 3000
	var last uint64
	for i := 0; i < n; i += 100 {
		publishRange(t, js, "R.x", i, i+100)
		info, err := cursor.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		head, _, err := ix.Head(ctx, "R")
		if err != nil {
			t.Fatal(err)
		}
		floor := info.AckFloor.Stream
		switch {
		case floor < last:
			t.Fatalf("the cursor stepped back from %d to %d", last, floor)
		case floor > head.LastSeq:
			t.Fatalf("the cursor is past %d, the head at %d", floor, head.LastSeq)
		case info.NumAckPending != 0 || info.NumRedelivered != 0 || info.Delivered.Stream != floor:
			t.Fatalf("the cursor delivered: %d pending, %d redelivered, delivered to %d past its floor %d",
				info.NumAckPending, info.NumRedelivered, info.Delivered.Stream, floor)
		}
		last = floor
	}
	waitArchived(t, ix, "R", n)
	checkFor(t, 10*time.Second, func() error {
		info, err := cursor.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != n || info.NumPending != 0 {
			return fmt.Errorf("cursor: ack floor %d, %d pending; want %d, 0", info.AckFloor.Stream, info.NumPending, n)
		}
		return nil
	})
	blocks := ix.Blocks("R", 0, 0)
	if len(blocks) < 5 {
		t.Fatalf("%d blocks; the test wants several cursor moves", len(blocks))
	}
}

// TestReaderCursorDeleted: a cursor deleted by hand ends the term at its
// next move, and the next term makes it anew at the head: the archive goes
// on, and the cursor ends past every archived message. The server answers
// no reset of a consumer it does not have, so the move that finds it gone
// waits out its timeout (5s) first, and the next term comes after the
// campaign's backoff.
func TestReaderCursorDeleted(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "RD"})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "RD", func(c *service.Config) {
		c.Block.TargetSize = 64 << 10
		c.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	})
	runReplica(t, cfg, nil)
	ix := openIndex(t, js, cfg)

	publishRange(t, js, "RD.x", 0, 500)
	waitArchived(t, ix, "RD", 500)
	if err := s.DeleteConsumer(ctx, "nts-RD"); err != nil {
		t.Fatal(err)
	}
	publishRange(t, js, "RD.x", 500, 1000)
	waitArchived(t, ix, "RD", 1000)
	checkFor(t, 30*time.Second, func() error {
		c, err := s.Consumer(ctx, "nts-RD")
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 1000 || info.NumPending != 0 {
			return fmt.Errorf("cursor: ack floor %d, %d pending; want 1000, 0", info.AckFloor.Stream, info.NumPending)
		}
		return nil
	})
}

// TestReaderInterestStream: on an Interest stream whose other consumer acks
// everything at once, the cursor holds each message until its block is
// committed, and its moves release them, so the stream empties as the
// archive fills.
func TestReaderInterestStream(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "INTR", Retention: jetstream.InterestPolicy})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "INTR")
	runReplica(t, cfg, nil)
	ix := openIndex(t, js, cfg)
	checkFor(t, 10*time.Second, func() error {
		_, err := s.Consumer(ctx, "nts-INTR-reader")
		return err
	})
	ackEverything(t, s, "other")
	publishRange(t, js, "INTR.x", 0, 1000)
	waitArchived(t, ix, "INTR", 1000)
	checkFor(t, 10*time.Second, func() error {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("the stream still holds %d messages", info.State.Msgs)
		}
		return nil
	})
}

// TestReaderRefused: where the server refuses the reader (a stream allowing
// one consumer), the ingest reads through the durable consumer and acks it
// block by block.
func TestReaderRefused(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "ONE", MaxConsumers: 1})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "ONE", func(c *service.Config) { c.Block.TargetSize = 64 << 10 })
	runReplica(t, cfg, nil)
	ix := openIndex(t, js, cfg)
	publishRange(t, js, "ONE.x", 0, 2000)
	waitArchived(t, ix, "ONE", 2000)
	checkFor(t, 10*time.Second, func() error {
		c, err := s.Consumer(ctx, "nts-ONE")
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.Delivered.Stream != 2000 || info.AckFloor.Stream != 2000 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer: delivered %d, ack floor %d, %d pending; want 2000, 2000, 0",
				info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending)
		}
		return nil
	})
	if _, err := s.Consumer(ctx, "nts-ONE-reader"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("reader of a stream allowing one consumer: %v", err)
	}
}

// TestReaderDroppedAtShutdown: a replica stopped cleanly deletes its
// reader and leaves the cursor, moved past everything it archived.
func TestReaderDroppedAtShutdown(t *testing.T) {
	nc, js, s := streamServer(t, jetstream.StreamConfig{Name: "RS"})
	ctx := t.Context()
	cfg := archiveConfig(t, nc.ConnectedUrl(), "RS")
	ix := openIndex(t, js, cfg)
	stop := startReplica(t, cfg, nil)
	publishRange(t, js, "RS.x", 0, 300)
	waitArchived(t, ix, "RS", 300)
	if _, err := s.Consumer(ctx, "nts-RS-reader"); err != nil {
		t.Fatalf("the reader while archiving: %v", err)
	}
	stop()
	if names := testenv.ConsumerNames(t, ctx, s); !slices.Equal(names, []string{"nts-RS"}) {
		t.Fatalf("consumers after a clean stop: %q; want the cursor nts-RS alone", names)
	}
	c, err := s.Consumer(ctx, "nts-RS")
	if err != nil {
		t.Fatal(err)
	}
	if info := c.CachedInfo(); info.AckFloor.Stream != 300 {
		t.Fatalf("cursor ack floor %d after a clean stop; want 300", info.AckFloor.Stream)
	}
}
