package tier_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-tiered/nts/tier"
)

// TestControllerStreamStats counts reads per stream and tier: a block the
// memory tier lost is read from memory (a miss), then from the file tier
// (a hit), and another stream's reads stay apart.
func TestControllerStreamStats(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	keyA, blkA, _ := sealed(t, "A", 1, 100)
	keyB, blkB, _ := sealed(t, "B", 1, 100)
	for _, kb := range []struct {
		key string
		blk []byte
	}{{keyA, blkA}, {keyB, blkB}} {
		if _, err := c.Put(ctx, kb.key, kb.blk); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.mem.Delete(ctx, keyA); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := c.ReadMsg(ctx, keyA, int64(len(blkA)), 5); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.ReadMsg(ctx, keyB, int64(len(blkB)), 5); err != nil {
		t.Fatal(err)
	}
	got := c.StreamStats()
	// A's first read misses memory and opens the file copy; the next two
	// find the file copy's reader cached, but still try memory first.
	wantA := []tier.StreamReads{{Tier: "memory", Reads: 3}, {Tier: "file", Reads: 3, Hits: 3}, {Tier: "blob"}}
	wantB := []tier.StreamReads{{Tier: "memory", Reads: 1, Hits: 1}, {Tier: "file"}, {Tier: "blob"}}
	if !slices.Equal(got["A"], wantA) || !slices.Equal(got["B"], wantB) || len(got) != 2 {
		t.Fatalf("stream stats %+v, want A %+v and B %+v", got, wantA, wantB)
	}
}
