package service

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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
// head: the sweep deletes the first unlisted one only. Of two partial
// writes, it deletes the one unmodified for tier.StaleTemp.
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
	// Two partial writes: one a crash left long ago, one still being written.
	stale, writing := filepath.Join(file.Dir(), "S", tier.TempPrefix+"1"), filepath.Join(file.Dir(), "S", tier.TempPrefix+"2")
	for _, p := range []string{stale, writing} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * tier.StaleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	a := &archiver{ix: ix, ctrl: ctrl, log: slog.New(slog.DiscardHandler), stats: map[string]*StreamStats{}, orphanGrace: time.Hour}
	a.sweep(ctx, time.Now())
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an abandoned partial write was kept (%v)", err)
	}
	if _, err := os.Stat(writing); err != nil {
		t.Errorf("a partial write in progress was removed: %v", err)
	}
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
