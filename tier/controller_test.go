package tier_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/block/blocktest"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

type stores struct {
	mem     *tier.Memory
	file    *tier.File
	blob    *blob.Blob
	fileDir string
}

func newController(t *testing.T, policies ...tier.Policy) (*tier.Controller, stores) {
	t.Helper()
	var s stores
	s.mem = tier.NewMemory(64<<20, 0)
	s.fileDir = t.TempDir()
	var err error
	if s.file, err = tier.NewFile(s.fileDir); err != nil {
		t.Fatal(err)
	}
	if s.blob, err = blob.Open(context.Background(), "dir://"+filepath.ToSlash(t.TempDir()), blob.Options{}); err != nil {
		t.Fatal(err)
	}
	levels := []tier.Level{{Tier: s.mem}, {Tier: s.file}, {Tier: s.blob}}
	for i, p := range policies {
		levels[i].Policy = p
	}
	c, err := tier.NewController(levels)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// sealed returns a block of n JSON-log messages starting at first.
func sealed(t *testing.T, stream string, first uint64, n int) (string, []byte, []block.Msg) {
	t.Helper()
	b, err := block.NewBuilder(block.Options{Stream: stream, FrameSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	msgs := blocktest.JSONLogs(int64(first), n)
	for i := range msgs {
		msgs[i].Seq = first + uint64(i)
		if err := b.Add(msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	key, err := tier.Key(stream, meta.FirstSeq, meta.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	return key, blk, msgs
}

func sameMsg(a, b block.Msg) bool {
	return a.Seq == b.Seq && a.Subject == b.Subject && bytes.Equal(a.Header, b.Header) &&
		bytes.Equal(a.Data, b.Data) && a.Time == b.Time
}

func TestControllerWriteThroughAndFallthrough(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	key, blk, msgs := sealed(t, "LOGS", 1, 500)
	if _, err := c.Put(ctx, key, blk); err != nil {
		t.Fatal(err)
	}
	held, err := c.Locate(ctx, key)
	if err != nil || len(held) != 3 {
		t.Fatalf("Locate = %v, %v; want all three tiers", held, err)
	}
	read := func(seq uint64, wantTier string) {
		t.Helper()
		m, from, err := c.ReadMsg(ctx, key, int64(len(blk)), seq)
		if err != nil {
			t.Fatalf("ReadMsg(%d): %v", seq, err)
		}
		if from != wantTier || !sameMsg(m, msgs[seq-1]) {
			t.Fatalf("ReadMsg(%d) from %s = %+v; want %+v from %s", seq, from, m, msgs[seq-1], wantTier)
		}
	}
	read(7, "memory")
	// A miss in memory falls through to the file tier.
	if err := s.mem.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	read(8, "file")
	// A corrupt file copy (the first half of its frames flipped) falls
	// through to the blob tier and is counted.
	flipFrames(t, s.fileDir, key)
	read(9, "blob")
	// Checksums are per frame: a frame the flips missed is still served
	// from the file copy.
	read(400, "file")
	if st := c.Stats(); st[1].Corrupt == 0 || st[0].Misses == 0 || st[2].Hits < 1 {
		t.Fatalf("stats do not show the miss, the corrupt copy and the blob hits: %+v", st)
	}
	// A seq the block does not hold is block.ErrNotFound, not a tier failure.
	if _, _, err := c.ReadMsg(ctx, key, int64(len(blk)), 501); !errors.Is(err, block.ErrNotFound) {
		t.Fatalf("ReadMsg past the block: %v", err)
	}
	// With no copy left anywhere, the error says no tier could serve it.
	for _, tr := range []tier.Tier{s.file, s.blob} {
		if err := tr.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	c2, _ := newController(t) // no cached footers
	if _, _, err := c2.ReadMsg(ctx, key, 0, 1); !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("ReadMsg with no copy: %v", err)
	}
}

func TestControllerReadRange(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	key, blk, msgs := sealed(t, "LOGS", 100, 300)
	if _, err := c.Put(ctx, key, blk); err != nil {
		t.Fatal(err)
	}
	if err := s.mem.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	var got []block.Msg
	err := c.ReadRange(ctx, key, 0, 150, 249, func(m block.Msg, from string) error {
		if from != "file" {
			t.Fatalf("served by %s, want file", from)
		}
		got = append(got, m)
		return nil
	})
	if err != nil || len(got) != 100 || !sameMsg(got[0], msgs[50]) || !sameMsg(got[99], msgs[149]) {
		t.Fatalf("ReadRange: %d messages, %v", len(got), err)
	}
	// The caller's error stops the range and comes back as it is.
	stop := errors.New("enough")
	n := 0
	err = c.ReadRange(ctx, key, 0, 0, 0, func(block.Msg, string) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("ReadRange stopped after %d with %v", n, err)
	}
}

func TestControllerEvict(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t,
		tier.Policy{MaxBlocks: 2},           // memory
		tier.Policy{MaxBytes: 1},            // file: evicts everything it holds
		tier.Policy{MaxAge: 24 * time.Hour}, // blob
	)
	var keys []string
	for i := range 4 {
		key, blk, _ := sealed(t, "LOGS", uint64(1+i*10), 10)
		if _, err := c.Put(ctx, key, blk); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		time.Sleep(2 * time.Millisecond) // distinct write times: oldest go first
	}
	evs, err := c.Evict(ctx, time.Now(), tier.EvictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.mem.Len() != 2 {
		t.Fatalf("memory holds %d blocks after eviction, want 2", s.mem.Len())
	}
	for _, k := range keys[:2] {
		if _, err := s.mem.Stat(ctx, k); !errors.Is(err, tier.ErrNotFound) {
			t.Fatalf("oldest block %s still in memory", k)
		}
	}
	if files, _ := s.file.List(ctx, ""); len(files) != 0 {
		t.Fatalf("file tier holds %d blocks, want 0", len(files))
	}
	var mem, file int
	for _, e := range evs {
		if e.Expired {
			t.Fatalf("nothing should expire yet: %+v", e)
		}
		switch e.Tier {
		case "memory":
			mem++
		case "file":
			file++
		}
	}
	if mem != 2 || file != 4 {
		t.Fatalf("evictions: %d memory, %d file; want 2, 4: %+v", mem, file, evs)
	}
	// Past the blob tier's max_age a block expires: gone from every tier.
	evs, err = c.Evict(ctx, time.Now().Add(48*time.Hour), tier.EvictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expired := 0
	for _, e := range evs {
		if e.Expired {
			expired++
		}
	}
	if expired != 4 {
		t.Fatalf("%d blocks expired, want 4: %+v", expired, evs)
	}
	for _, k := range keys {
		if held, _ := c.Locate(ctx, k); len(held) != 0 {
			t.Fatalf("expired block %s still in %v", k, held)
		}
	}
}

func TestControllerNeverEvictsTheLastCopy(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t, tier.Policy{MaxBlocks: 1})
	key1, blk1, _ := sealed(t, "LOGS", 1, 10)
	key2, blk2, _ := sealed(t, "LOGS", 11, 10)
	for _, p := range []struct {
		k string
		b []byte
	}{{key1, blk1}, {key2, blk2}} {
		if _, err := c.Put(ctx, p.k, p.b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Only memory holds key1 now.
	if err := s.file.Delete(ctx, key1); err != nil {
		t.Fatal(err)
	}
	if err := s.blob.Delete(ctx, key1); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Evict(ctx, time.Now(), tier.EvictOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("evicted %+v; the only copy must stay", evs)
	}
	if _, err := s.mem.Stat(ctx, key1); err != nil {
		t.Fatalf("only copy gone: %v", err)
	}
	if _, err := c.Demote(ctx, key1); !errors.Is(err, tier.ErrLastCopy) {
		t.Fatalf("Demote of the only copy: %v", err)
	}
}

func TestControllerStreamPolicy(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	for i, stream := range []string{"HOT", "HOT", "COLD", "COLD"} {
		key, blk, _ := sealed(t, stream, uint64(1+i*10), 5)
		if _, err := c.Put(ctx, key, blk); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := c.Evict(ctx, time.Now(), tier.EvictOptions{StreamPolicy: func(stream string, level int) (tier.Policy, bool) {
		if stream == "COLD" && level == 0 {
			return tier.Policy{MaxBlocks: 1}, true
		}
		return tier.Policy{}, false
	}})
	if err != nil || len(evs) != 1 || evs[0].Tier != "memory" {
		t.Fatalf("Evict = %+v, %v; want one COLD block out of memory", evs, err)
	}
	if s.mem.Len() != 3 {
		t.Fatalf("memory holds %d, want 3", s.mem.Len())
	}
}

func TestControllerPromoteDemote(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	key, blk, msgs := sealed(t, "LOGS", 1, 50)
	if _, err := c.Put(ctx, key, blk); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"memory", "file"} {
		from, err := c.Demote(ctx, key)
		if err != nil || from != want {
			t.Fatalf("Demote = %q, %v; want %q", from, err, want)
		}
	}
	if held, _ := c.Locate(ctx, key); len(held) != 1 || held[0] != "blob" {
		t.Fatalf("after two demotes held by %v", held)
	}
	if _, err := c.Demote(ctx, key); !errors.Is(err, tier.ErrLastCopy) {
		t.Fatalf("third Demote: %v", err)
	}
	m, from, err := c.ReadMsg(ctx, key, 0, 3)
	if err != nil || from != "blob" || !sameMsg(m, msgs[2]) {
		t.Fatalf("read after demote: %s %v", from, err)
	}
	for _, want := range []string{"file", "memory", "memory"} {
		to, err := c.Promote(ctx, key)
		if err != nil || to != want {
			t.Fatalf("Promote = %q, %v; want %q", to, err, want)
		}
	}
	got, err := s.mem.Get(ctx, key)
	if err != nil || !bytes.Equal(got, blk) {
		t.Fatalf("promoted copy differs: %v", err)
	}
	if _, err := c.Promote(ctx, "LOGS/missing"); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("Promote of a missing block: %v", err)
	}
}

// flipFrames damages the file tier's copy of key: every byte of its first
// half past the header, which leaves frames in the second half intact.
func flipFrames(t *testing.T, dir, key string) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(key))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 16; i < len(raw)/2; i++ {
		raw[i] ^= 0x55
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestControllerRepair: a copy a read found corrupt is rewritten by the
// next Repair from a good copy in another tier, and then serves reads; a
// copy evicted since is not brought back, and one with no good copy left
// anywhere stays as it is.
func TestControllerRepair(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	put := func(first uint64) (string, []byte) {
		t.Helper()
		key, blk, _ := sealed(t, "LOGS", first, 500)
		if _, err := c.Put(ctx, key, blk); err != nil {
			t.Fatal(err)
		}
		// Reads go to the file tier first.
		if err := s.mem.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		return key, blk
	}
	read := func(key string, blk []byte, seq uint64) (string, error) {
		t.Helper()
		_, from, err := c.ReadMsg(ctx, key, int64(len(blk)), seq)
		return from, err
	}

	key, blk := put(1)
	flipFrames(t, s.fileDir, key)
	if from, err := read(key, blk, 9); err != nil || from != "blob" {
		t.Fatalf("read of a corrupt file copy: from %q, %v; want the blob tier", from, err)
	}
	if n, err := c.Repair(ctx); err != nil || n != 1 {
		t.Fatalf("Repair = %d, %v; want 1 copy rewritten", n, err)
	}
	if got, err := s.file.Get(ctx, key); err != nil || !bytes.Equal(got, blk) {
		t.Fatalf("the file copy after Repair differs from the block (%v)", err)
	}
	if from, err := read(key, blk, 10); err != nil || from != "file" {
		t.Fatalf("read after Repair: from %q, %v; want the file tier", from, err)
	}
	if n, err := c.Repair(ctx); err != nil || n != 0 {
		t.Fatalf("second Repair = %d, %v; want nothing to do", n, err)
	}
	if st := c.Stats(); st[1].Corrupt != 1 || st[1].Repairs != 1 {
		t.Fatalf("file tier stats %+v; want one corrupt copy, one repair", st[1])
	}

	// Evicted between the read and the Repair: stays evicted.
	key2, blk2 := put(1001)
	flipFrames(t, s.fileDir, key2)
	if _, err := read(key2, blk2, 1001); err != nil {
		t.Fatal(err)
	}
	if err := s.file.Delete(ctx, key2); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Repair(ctx); err != nil || n != 0 {
		t.Fatalf("Repair of an evicted copy = %d, %v; want nothing rewritten", n, err)
	}
	if _, err := s.file.Stat(ctx, key2); !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("an evicted copy came back: %v", err)
	}

	// No good copy anywhere: the corrupt one is left as it is.
	key3, blk3 := put(2001)
	flipFrames(t, s.fileDir, key3)
	before, err := s.file.Get(ctx, key3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.blob.Delete(ctx, key3); err != nil {
		t.Fatal(err)
	}
	if _, err := read(key3, blk3, 2001); !errors.Is(err, tier.ErrUnavailable) {
		t.Fatalf("read with no good copy: %v, want ErrUnavailable", err)
	}
	if n, err := c.Repair(ctx); err != nil || n != 0 {
		t.Fatalf("Repair with no good copy = %d, %v; want nothing rewritten", n, err)
	}
	if after, err := s.file.Get(ctx, key3); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("the only copy changed (%v)", err)
	}
}
