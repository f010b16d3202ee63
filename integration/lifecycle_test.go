package integration

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// TestLifecycleEvictsAndExpires runs the policy loop: memory keeps one block,
// the index follows what the tiers hold, and past the blob tier's max_age a
// block is gone from every tier and from the index.
func TestLifecycleEvictsAndExpires(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "AGING", Subjects: []string{"aging.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Block.TargetSize = 64 << 10
	cfg.Tiers.PolicyInterval = service.Duration(time.Second)
	cfg.Tiers.Memory.MaxBlocks = 1
	// Long enough for the archive to be written and evicted from memory
	// before its first blocks expire, on a loaded machine too.
	cfg.Tiers.Blob.MaxAge = service.Duration(15 * time.Second)
	startReplica(t, cfg)
	want := map[uint64]published{}
	publish(t, e.js, "aging", 0, 3000, want, nil)
	rd := e.reader(t, cfg)
	rd.waitArchived(t, "AGING", 3000, 30*time.Second)
	// Memory keeps one block: the index says the others are in file and
	// blob only.
	deadline := time.Now().Add(20 * time.Second)
	for {
		inMem := 0
		blocks := rd.ix.Blocks("AGING", 0, 0)
		for _, b := range blocks {
			for _, tr := range b.Tiers {
				if tr == "memory" {
					inMem++
				}
			}
		}
		if len(blocks) > 1 && inMem == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d blocks still listed in memory", inMem, len(blocks))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past max_age every block expires: gone from the index and the tiers.
	deadline = time.Now().Add(40 * time.Second)
	for len(rd.ix.Blocks("AGING", 0, 0)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d blocks left after max_age", len(rd.ix.Blocks("AGING", 0, 0)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	objs, err := rd.ctrl.Levels()[2].Tier.List(ctx, "AGING/")
	if err != nil || len(objs) != 0 {
		t.Fatalf("blob tier still holds %d objects (%v)", len(objs), err)
	}
}
