package service

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier"
)

// TestSweepDeletesOnlyOrphans writes a committed block, an unlisted block at
// or below the head (the leftover of a leader that never committed it), one
// above the head (a block being written now) and one of an archive with no
// head: the sweep deletes the first unlisted one only.
func TestSweepDeletesOnlyOrphans(t *testing.T) {
	ctx := context.Background()
	srv := testenv.RunNATS(t)
	js, err := jetstream.New(testenv.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Open(ctx, js, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	file, err := tier.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := tier.NewController([]tier.Level{{Tier: tier.NewMemory(0, 0)}, {Tier: file}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(stream string, first, last uint64) string {
		k, err := tier.Key(stream, first, last)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	committed, orphan, inFlight, headless := key("S", 6, 10), key("S", 1, 5), key("S", 11, 20), key("T", 1, 1)
	for _, k := range []string{committed, orphan, inFlight, headless} {
		if _, err := ctrl.Put(ctx, k, []byte("block "+k)); err != nil {
			t.Fatal(err)
		}
	}
	meta := index.BlockMeta{Stream: "S", FirstSeq: 6, LastSeq: 10, Count: 5, Size: 16, Key: committed, Tiers: []string{"memory", "file"}}
	if _, err := ix.Commit(ctx, meta, 0, "leader", "inc"); err != nil {
		t.Fatal(err)
	}
	if err := ix.WaitFor(ctx, "S", 10); err != nil {
		t.Fatal(err)
	}
	a := &archiver{ix: ix, ctrl: ctrl, log: slog.New(slog.DiscardHandler), stats: map[string]*StreamStats{}, orphanGrace: time.Hour}
	a.sweep(ctx, time.Now())
	if held, _ := ctrl.Locate(ctx, orphan); len(held) != 2 {
		t.Fatalf("a young orphan was swept (held by %v); the grace period must protect it", held)
	}
	a.sweep(ctx, time.Now().Add(2*time.Hour))
	for _, tc := range []struct {
		key  string
		kept bool
	}{{committed, true}, {orphan, false}, {inFlight, true}, {headless, true}} {
		for _, l := range ctrl.Levels() {
			_, err := l.Tier.Stat(ctx, tc.key)
			if kept := err == nil; kept != tc.kept {
				t.Errorf("%s in %s: kept %v, want %v (%v)", tc.key, l.Tier.Name(), kept, tc.kept, err)
			}
			if err != nil && !errors.Is(err, tier.ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
}
