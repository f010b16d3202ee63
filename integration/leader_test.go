package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// TestOneLeaderPerStreamAndTakeover runs two replicas on the same streams:
// exactly one ingests each stream; when it stops, the other takes over within
// twice the lock TTL and the archive stays whole.
func TestOneLeaderPerStreamAndTakeover(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	streams := []string{"A", "B", "C"}
	for _, s := range streams {
		if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{s + ".>"}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg1, cfg2 := e.config(t), e.config(t)
	ttl := time.Duration(cfg1.Index.LockTTL)
	r1, r2 := startReplica(t, cfg1), startReplica(t, cfg2)
	replicas := map[string]*replica{r1.id: r1, r2.id: r2}
	want := map[string]map[uint64]published{}
	for _, s := range streams {
		want[s] = map[uint64]published{}
		publish(t, e.js, s, 0, 2000, want[s], nil)
	}
	rd := e.reader(t, cfg1)
	leaders := map[string]string{}
	for _, s := range streams {
		rd.waitArchived(t, s, 2000, time.Minute)
		id, ok, err := rd.ix.Leader(ctx, s)
		if err != nil || !ok {
			t.Fatalf("stream %s has no leader (%v)", s, err)
		}
		leaders[s] = id
		h, _, err := rd.ix.Head(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if h.Leader != id {
			t.Fatalf("stream %s: head committed by %s, lock held by %s", s, h.Leader, id)
		}
	}
	// Stop the replica leading A: the streams it led pass to the other.
	gone := replicas[leaders["A"]]
	if gone == nil {
		t.Fatalf("stream A is led by %s, neither replica", leaders["A"])
	}
	stopped := time.Now()
	gone.stop(t)
	for _, s := range streams {
		publish(t, e.js, s, 2000, 500, want[s], nil)
	}
	for _, s := range streams {
		rd.waitArchived(t, s, 2500, 2*ttl+30*time.Second)
		id, ok, err := rd.ix.Leader(ctx, s)
		if err != nil || !ok {
			t.Fatalf("stream %s has no leader after the stop (%v)", s, err)
		}
		h, _, err := rd.ix.Head(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if h.Leader != id {
			t.Fatalf("stream %s: last commit by %s, leader %s", s, h.Leader, id)
		}
		checkArchive(t, rd, s, want[s])
	}
	if took := time.Since(stopped); took > 2*ttl+30*time.Second {
		t.Fatalf("takeover took %v", took)
	}
	for _, s := range streams {
		if id, _, _ := rd.ix.Leader(ctx, s); id == gone.id {
			t.Fatalf("stream %s is still led by the stopped replica", s)
		}
	}
	t.Logf("leaders before the stop: %v", fmt.Sprint(leaders))
}

// TestTrickleSealsByLinger sends one message every 0.5 s: blocks seal by
// max_linger, nothing is delivered twice, and a clean stop seals the rest.
func TestTrickleSealsByLinger(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "TRICKLE", Subjects: []string{"trickle.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Block.MaxLinger = service.Duration(time.Second)
	r := startReplica(t, cfg)
	want := map[uint64]published{}
	for i := range 8 {
		publish(t, e.js, "trickle", i, 1, want, nil)
		time.Sleep(500 * time.Millisecond)
	}
	rd := e.reader(t, cfg)
	rd.waitArchived(t, "TRICKLE", 8, 10*time.Second)
	if n := len(rd.ix.Blocks("TRICKLE", 0, 0)); n < 2 {
		t.Fatalf("%d blocks: a trickle should seal several by linger", n)
	}
	// A message left in the builder is sealed by a clean stop.
	cfg2 := cfg
	cfg2.Block.MaxLinger = service.Duration(time.Hour)
	r.stop(t)
	r = startReplica(t, cfg2)
	publish(t, e.js, "trickle", 100, 1, want, nil)
	// The replica reads through its reader; the durable consumer is the
	// cursor that committed blocks move.
	c, err := e.js.Consumer(ctx, "TRICKLE", "nts-TRICKLE-reader")
	deadline := time.Now().Add(20 * time.Second)
	for err != nil || func() bool { i, err := c.Info(ctx); return err != nil || i.Delivered.Stream < 9 }() {
		if time.Now().After(deadline) {
			t.Fatal("the new replica did not fetch the message")
		}
		time.Sleep(50 * time.Millisecond)
		c, err = e.js.Consumer(ctx, "TRICKLE", "nts-TRICKLE-reader")
	}
	r.stop(t)
	rd.waitArchived(t, "TRICKLE", 9, 10*time.Second)
	checkArchive(t, rd, "TRICKLE", want)
	info := consumerInfo(t, e.js, "TRICKLE", "nts-TRICKLE")
	if info.AckFloor.Stream != 9 || info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Fatalf("consumer after the stop: ack floor %d, %d redelivered, %d pending; want 9, 0, 0", info.AckFloor.Stream, info.NumRedelivered, info.NumAckPending)
	}
}

// TestIdleSeal: with max_linger an hour, a builder below a quarter of the
// target size waits, while one holding a quarter seals as soon as the
// stream goes quiet, all of it in one block.
func TestIdleSeal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BURST", Subjects: []string{"burst"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Block.MaxLinger = service.Duration(time.Hour)
	startReplica(t, cfg)
	rd := e.reader(t, cfg)
	quarter := int(cfg.Block.TargetSize) / 4
	const size = 1024
	send := func(n int) {
		t.Helper()
		for range n {
			if _, err := e.js.Publish(ctx, "burst", make([]byte, size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(quarter / size / 2)
	time.Sleep(time.Second)
	if b := rd.ix.Blocks("BURST", 0, 0); len(b) != 0 {
		t.Fatalf("%d blocks: a builder of an eighth of the target sealed before max_linger", len(b))
	}
	send(quarter / size)
	n := uint64(quarter/size/2 + quarter/size)
	rd.waitArchived(t, "BURST", n, 10*time.Second)
	if b := rd.ix.Blocks("BURST", 0, 0); len(b) != 1 || b[0].FirstSeq != 1 || b[0].LastSeq != n {
		t.Fatalf("blocks %+v, want one holding 1 to %d", b, n)
	}
	send(8)
	time.Sleep(time.Second)
	if b := rd.ix.Blocks("BURST", 0, 0); len(b) != 1 {
		t.Fatalf("%d blocks: 8 messages sealed before max_linger", len(b))
	}
}

// TestBacklogTailSeal: a backlog far below a quarter of the target size,
// stored longer than max_linger before nts starts, is archived as its last
// message comes rather than max_linger after it arrives, while a message
// published afterwards waits its linger.
func TestBacklogTailSeal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "TAIL", Subjects: []string{"tail"}}); err != nil {
		t.Fatal(err)
	}
	const n, linger = 20, 3 * time.Second
	for range n {
		if _, err := e.js.Publish(ctx, "tail", []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(linger + 100*time.Millisecond)
	cfg := e.config(t)
	cfg.Block.MaxLinger = service.Duration(linger)
	startReplica(t, cfg)
	rd := e.reader(t, cfg)
	rd.waitArchived(t, "TAIL", n, 10*time.Second)
	cons := consumerInfo(t, e.js, "TAIL", "nts-TAIL")
	b := rd.ix.Blocks("TAIL", 0, 0)
	if len(b) != 1 || b[0].FirstSeq != 1 || b[0].LastSeq != n {
		t.Fatalf("blocks %+v, want one holding 1 to %d", b, n)
	}
	if took := time.Unix(0, b[0].Created).Sub(cons.Created); took > linger/2 {
		t.Fatalf("the backlog's block sealed %v after the consumer was made, want well within max_linger (%v)", took, linger)
	}

	// A fresh message waits for its linger.
	if _, err := e.js.Publish(ctx, "tail", []byte("new")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(linger / 2)
	if b := rd.ix.Blocks("TAIL", 0, 0); len(b) != 1 {
		t.Fatalf("%d blocks: a fresh message sealed before max_linger", len(b))
	}
	rd.waitArchived(t, "TAIL", n+1, 2*linger)
}
