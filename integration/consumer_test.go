package integration

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestConsumerDeletedMidIngest deletes the replica's consumer between two
// bursts, as an operator cleaning up consumers might: the ingest notices,
// ends its term, and the next term makes the consumer anew after the head.
// Every message is archived exactly once and the new consumer acks them
// all.
func TestConsumerDeletedMidIngest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Block.TargetSize = 64 << 10
	r := startReplica(t, cfg)
	t.Cleanup(func() { r.stop(t) })
	rd := e.reader(t, cfg)
	want := map[uint64]published{}
	publish(t, e.js, "orders", 0, 2000, want, nil)
	rd.waitArchived(t, "ORDERS", uint64(len(want)), 30*time.Second)
	before := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS")

	if err := e.js.DeleteConsumer(ctx, "ORDERS", "nts-ORDERS"); err != nil {
		t.Fatal(err)
	}
	publish(t, e.js, "orders", 2000, 2000, want, nil)
	rd.waitArchived(t, "ORDERS", uint64(len(want)), 30*time.Second)
	checkArchive(t, rd, "ORDERS", want)
	waitAcked(t, e.js, "ORDERS", "nts-ORDERS", uint64(len(want)), 30*time.Second)
	after := consumerInfo(t, e.js, "ORDERS", "nts-ORDERS")
	if !after.Created.After(before.Created) {
		t.Fatalf("the consumer was made at %v, not after the deleted one (%v)", after.Created, before.Created)
	}
}
