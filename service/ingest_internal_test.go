package service

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/internal/testenv"
)

// TestDeliveryGap hands add real deliveries of a consumer with the second
// one missing, as a client that dropped it would: add refuses the third
// rather than put a hole in the block, and the builder keeps the first.
func TestDeliveryGap(t *testing.T) {
	ctx := context.Background()
	srv := testenv.RunNATS(t)
	js, err := jetstream.New(testenv.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "GAP", Subjects: []string{"gap"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "gap", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, "GAP", jetstream.ConsumerConfig{AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 3 {
		t.Fatalf("fetched %d messages, want 3 (%v)", len(msgs), batch.Error())
	}
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
