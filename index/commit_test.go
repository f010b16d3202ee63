package index

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nats-tiered/nts/internal/testenv"
)

func TestCommitRoundTrip(t *testing.T) {
	commitModes(t, func(t *testing.T, s *server.Server, open func(testing.TB) *Index) {
		ix := open(t)
		ctx := testCtx(t, 20*time.Second)
		h, rev, err := ix.Head(ctx, "ORDERS")
		if err != nil || rev != 0 || h.LastSeq != 0 {
			t.Fatalf("Head of a new stream = %+v, %d, %v; want zero, 0, nil", h, rev, err)
		}
		m := meta("ORDERS", 1, 100)
		rev1, err := ix.Commit(ctx, m, 0, "r1", "inc-A")
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		h, rev, err = ix.Head(ctx, "ORDERS")
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if rev != rev1 || h.LastSeq != 100 || h.Leader != "r1" || h.Incarnation != "inc-A" || !h.Block.Equal(&m) {
			t.Fatalf("Head = %+v rev %d; want block %+v rev %d", h, rev, m, rev1)
		}
		if h.Committed == 0 {
			t.Errorf("Head.Committed not set")
		}
		// One batch stores the entry just before the head; two steps
		// store it just after.
		wantBlkRev := rev1 - 1
		if !ix.Atomic() {
			wantBlkRev = rev1 + 1
		}
		if e, err := ix.last(ctx, blockKey("ORDERS", 1)); err != nil || !e.live || e.rev != wantBlkRev {
			t.Fatalf("block entry = rev %d live %v, %v; want rev %d", e.rev, e.live, err, wantBlkRev)
		}
		if err := ix.WaitFor(ctx, "ORDERS", 100); err != nil {
			t.Fatalf("WaitFor: %v", err)
		}
		got, ok := ix.Lookup("ORDERS", 42)
		if !ok || !got.Equal(&m) {
			t.Fatalf("Lookup(42) = %+v, %v; want %+v", got, ok, m)
		}
		m2 := meta("ORDERS", 101, 250)
		if _, err := ix.Commit(ctx, m2, rev1, "r1", "inc-A"); err != nil {
			t.Fatalf("second Commit: %v", err)
		}
		if err := ix.WaitFor(ctx, "ORDERS", 250); err != nil {
			t.Fatalf("WaitFor: %v", err)
		}
		if got, ok := ix.Lookup("ORDERS", 250); !ok || got.FirstSeq != 101 {
			t.Fatalf("Lookup(250) = %+v, %v", got, ok)
		}
		// The view applies the head and the block entry one after the
		// other.
		checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			sum, ok := ix.Stream("ORDERS")
			if !ok || sum.Blocks != 2 || sum.FirstSeq != 1 || sum.LastSeq != 250 || sum.Msgs != 250 ||
				sum.Head == nil || sum.Head.LastSeq != 250 {
				return fmt.Errorf("Stream = %+v", sum)
			}
			return nil
		})
	})
}

func TestCommitFencing(t *testing.T) {
	commitModes(t, func(t *testing.T, s *server.Server, open func(testing.TB) *Index) {
		a, b := open(t), open(t)
		ctx := testCtx(t, 20*time.Second)
		base := commitChain(t, a, "S", 1, 1, 10)

		// Both "leaders" read the head at base and commit different
		// blocks from the same first sequence.
		ma, mb := meta("S", 11, 20), meta("S", 11, 30)
		mb.Created = 99
		var (
			wg   sync.WaitGroup
			errs [2]error
			revs [2]uint64
		)
		for i, c := range []struct {
			ix *Index
			m  BlockMeta
			id string
		}{{a, ma, "a"}, {b, mb, "b"}} {
			wg.Go(func() { revs[i], errs[i] = c.ix.Commit(ctx, c.m, base, c.id, "inc") })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("both commits succeeded")
				}
				won = i
			case !errors.Is(err, ErrFenced):
				t.Fatalf("losing commit: %v; want ErrFenced", err)
			}
		}
		if won < 0 {
			t.Fatalf("no commit succeeded: %v, %v", errs[0], errs[1])
		}
		winner := []BlockMeta{ma, mb}[won]
		h, rev, err := a.Head(ctx, "S")
		if err != nil || rev != revs[won] || !h.Block.Equal(&winner) {
			t.Fatalf("Head = %+v rev %d, %v; want the winner's block at rev %d", h.Block, rev, err, revs[won])
		}
		e, err := a.last(ctx, blockKey("S", 11))
		if err != nil || !e.live {
			t.Fatalf("block entry: %+v, %v", e, err)
		}
		stored, err := decodeBlock("S", 11, e.value)
		if err != nil || !stored.Equal(&winner) {
			t.Fatalf("block entry = %+v, %v; want the winner's %+v", stored, err, winner)
		}

		// The loser retries with what it saw: still fenced, nothing changes.
		loser := []BlockMeta{ma, mb}[1-won]
		if _, err := a.Commit(ctx, loser, base, "late", "inc"); !errors.Is(err, ErrFenced) {
			t.Fatalf("late commit: %v; want ErrFenced", err)
		}
		// A deposed leader committing a later block from an old head.
		if _, err := a.Commit(ctx, meta("S", 31, 40), base, "late", "inc"); !errors.Is(err, ErrFenced) {
			t.Fatalf("deposed commit: %v; want ErrFenced", err)
		}
		if e, err := a.last(ctx, blockKey("S", 31)); err != nil || e.rev != 0 {
			t.Fatalf("deposed commit left an entry: %+v, %v", e, err)
		}
		if _, r, _ := a.Head(ctx, "S"); r != rev {
			t.Fatalf("head moved to %d after fenced commits; want %d", r, rev)
		}
	})
}

func TestCommitIdempotentRetry(t *testing.T) {
	commitModes(t, func(t *testing.T, s *server.Server, open func(testing.TB) *Index) {
		ix := open(t)
		ctx := testCtx(t, 20*time.Second)
		m := meta("S", 1, 10)
		rev, err := ix.Commit(ctx, m, 0, "r1", "i")
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		// As if the reply of the first call was lost.
		again, err := ix.Commit(ctx, m, 0, "r1", "i")
		if err != nil || again != rev {
			t.Fatalf("retried Commit = %d, %v; want %d, nil", again, err, rev)
		}
		// The same block by another leader is not a retry.
		if _, err := ix.Commit(ctx, m, 0, "r2", "i"); !errors.Is(err, ErrFenced) {
			t.Fatalf("Commit by another leader from the old head: %v; want ErrFenced", err)
		}
	})
}

func TestCommitNeverOverwritesBlock(t *testing.T) {
	commitModes(t, func(t *testing.T, s *server.Server, open func(testing.TB) *Index) {
		ix := open(t)
		ctx := testCtx(t, 20*time.Second)
		m := meta("S", 1, 10)
		rev, err := ix.Commit(ctx, m, 0, "r1", "i")
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		// A new incarnation that forgot to delete the old entries, at the
		// right head revision: the different block at the same key is
		// refused and the head does not move.
		other := meta("S", 1, 5)
		if _, err := ix.Commit(ctx, other, rev, "r1", "j"); !errors.Is(err, ErrConflict) {
			t.Fatalf("Commit over a different entry: %v; want ErrConflict", err)
		}
		h, r, err := ix.Head(ctx, "S")
		if err != nil || r != rev || !h.Block.Equal(&m) {
			t.Fatalf("head changed: %+v rev %d, %v", h, r, err)
		}
		// Once the entry is deleted, the new life of the stream may reuse
		// the key.
		if err := ix.DeleteBlock(ctx, "S", 1); err != nil {
			t.Fatalf("DeleteBlock: %v", err)
		}
		if _, err := ix.Commit(ctx, other, rev, "r1", "j"); err != nil {
			t.Fatalf("Commit after delete: %v", err)
		}
		e, _ := ix.last(ctx, blockKey("S", 1))
		if got, err := decodeBlock("S", 1, e.value); err != nil || !got.Equal(&other) {
			t.Fatalf("entry = %+v, %v; want %+v", got, err, other)
		}
	})
}

func TestCommitRejectsInvalid(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 10*time.Second)
	bad := meta("S", 5, 4)
	if _, err := ix.Commit(ctx, bad, 0, "r", "i"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Commit of %d-%d: %v; want ErrInvalid", bad.FirstSeq, bad.LastSeq, err)
	}
	if _, err := ix.Commit(ctx, meta("S", 1, 2), 0, "", "i"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Commit without leader: %v; want ErrInvalid", err)
	}
	if _, err := ix.Commit(ctx, meta("a.b", 1, 2), 0, "r", "i"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Commit for stream a.b: %v; want ErrInvalid", err)
	}
	if _, _, err := ix.Head(ctx, "a b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Head of \"a b\": %v; want ErrInvalid", err)
	}
}

func TestRepair(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 20*time.Second)
	rev := commitChain(t, ix, "S", 1, 2, 10)

	// A leader crashed after moving the head and before writing the block
	// entry: only the first of the two-step writes happened.
	m := meta("S", 21, 30)
	h := Head{Stream: "S", LastSeq: 30, Block: m, Leader: "crashed", Incarnation: "inc-1", Committed: 1}
	val, _ := json.Marshal(&h)
	headRev, err := ix.kv.Update(ctx, headKey("S"), val, rev)
	if err != nil {
		t.Fatalf("write head: %v", err)
	}
	if _, ok := ix.Block("S", 21); ok {
		t.Fatalf("view holds a block that has no entry")
	}
	repaired, err := ix.Repair(ctx, "S")
	if err != nil || !repaired {
		t.Fatalf("Repair = %v, %v; want true, nil", repaired, err)
	}
	if err := ix.WaitFor(ctx, "S", 30); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if got, ok := ix.Lookup("S", 25); !ok || !got.Equal(&m) {
		t.Fatalf("Lookup(25) after repair = %+v, %v", got, ok)
	}
	// Repair is idempotent, and the next leader commits on top.
	if repaired, err := ix.Repair(ctx, "S"); err != nil || repaired {
		t.Fatalf("second Repair = %v, %v; want false, nil", repaired, err)
	}
	if _, err := ix.Commit(ctx, meta("S", 31, 40), headRev, "next", "inc-1"); err != nil {
		t.Fatalf("Commit after repair: %v", err)
	}

	// The head's block expires: Repair must not bring it back, even once
	// other markers would have expired.
	if err := ix.DeleteBlock(ctx, "S", 31); err != nil {
		t.Fatalf("DeleteBlock: %v", err)
	}
	if repaired, err := ix.Repair(ctx, "S"); err != nil || repaired {
		t.Fatalf("Repair after expiry = %v, %v; want false, nil", repaired, err)
	}
	if e, _ := ix.last(ctx, blockKey("S", 31)); e.live {
		t.Fatalf("expired head block came back")
	}
}

func TestRepairConflict(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 10*time.Second)
	rev := commitChain(t, ix, "S", 1, 1, 10)
	// Someone replaced the head's block entry with another block.
	other := meta("S", 1, 3)
	val, _ := json.Marshal(&other)
	e, _ := ix.last(ctx, blockKey("S", 1))
	if _, err := ix.kv.Update(ctx, blockKey("S", 1), val, e.rev); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := ix.Repair(ctx, "S"); !errors.Is(err, ErrConflict) {
		t.Fatalf("Repair = %v; want ErrConflict", err)
	}
	if _, err := ix.Commit(ctx, meta("S", 11, 20), rev, "r", "inc-1"); err != nil {
		t.Fatalf("Commit of the next block: %v", err)
	}
}

func TestReplicaSeesCommits(t *testing.T) {
	s := testenv.RunNATS(t)
	writer := openReplica(t, s, Options{}).ix
	commitChain(t, writer, "S", 1, 3, 10)
	// A replica opened later loads what is there, then follows.
	reader := openReplica(t, s, Options{}).ix
	if got := reader.Blocks("S", 0, 0); len(got) != 3 {
		t.Fatalf("reader loaded %d blocks; want 3", len(got))
	}
	ctx := testCtx(t, 10*time.Second)
	_, rev, _ := writer.Head(ctx, "S")
	if _, err := writer.Commit(ctx, meta("S", 31, 40), rev, "leader-1", "inc-1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, ok := reader.Lookup("S", 35); !ok {
			return errors.New("reader does not see seq 35")
		}
		return nil
	})
	if err := writer.UpdateTiers(ctx, "S", 31, []string{"blob"}); err != nil {
		t.Fatalf("UpdateTiers: %v", err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if m, _ := reader.Block("S", 31); !slices.Equal(m.Tiers, []string{"blob"}) {
			return fmt.Errorf("reader sees tiers %v", m.Tiers)
		}
		return nil
	})
	if err := writer.DeleteBlock(ctx, "S", 1); err != nil {
		t.Fatalf("DeleteBlock: %v", err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, ok := reader.Lookup("S", 5); ok {
			return errors.New("reader still holds the deleted block")
		}
		return nil
	})
	sum, _ := reader.Stream("S")
	if sum.Blocks != 3 || sum.FirstSeq != 11 || sum.LastSeq != 40 ||
		sum.Tiers["blob"] != (TierUsage{Blocks: 3, Bytes: 3 * 400}) || sum.Tiers["memory"].Blocks != 2 {
		t.Fatalf("reader's summary = %+v", sum)
	}
}

func TestUpdateTiers(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 20*time.Second)
	commitChain(t, ix, "S", 1, 1, 10)
	if err := ix.UpdateTiers(ctx, "S", 99, []string{"blob"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateTiers of a missing block: %v; want ErrNotFound", err)
	}
	if err := ix.UpdateTiers(ctx, "S", 1, []string{""}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("UpdateTiers with an empty name: %v; want ErrInvalid", err)
	}
	// Concurrent updates all land, one after another.
	sets := [][]string{{"file", "blob"}, {"blob"}, {"memory", "blob"}, {"file"}}
	var wg sync.WaitGroup
	errs := make([]error, len(sets))
	for i, set := range sets {
		wg.Go(func() { errs[i] = ix.UpdateTiers(ctx, "S", 1, set) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("UpdateTiers %v: %v", sets[i], err)
		}
	}
	e, _ := ix.last(ctx, blockKey("S", 1))
	got, err := decodeBlock("S", 1, e.value)
	if err != nil || !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, got.Tiers) }) {
		t.Fatalf("tiers after concurrent updates = %v, %v", got.Tiers, err)
	}
	want := meta("S", 1, 10)
	if !sameBlock(&got, &want) {
		t.Fatalf("UpdateTiers changed more than tiers: %+v", got)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if m, _ := ix.Block("S", 1); !slices.Equal(m.Tiers, got.Tiers) {
			return fmt.Errorf("view tiers %v; want %v", m.Tiers, got.Tiers)
		}
		return nil
	})
}

func TestDeleteBlockMarkers(t *testing.T) {
	s := testenv.RunNATS(t)
	ix := openReplica(t, s, Options{MarkerTTL: time.Second}).ix
	ctx := testCtx(t, 20*time.Second)
	commitChain(t, ix, "S", 1, 2, 10)
	if err := ix.DeleteBlock(ctx, "S", 1); err != nil {
		t.Fatalf("DeleteBlock: %v", err)
	}
	if err := ix.DeleteBlock(ctx, "S", 1); err != nil {
		t.Fatalf("DeleteBlock again: %v", err)
	}
	if err := ix.DeleteBlock(ctx, "S", 11); err != nil { // the head's block
		t.Fatalf("DeleteBlock of the head's block: %v", err)
	}
	// The marker of an ordinary block expires; the head block's stays.
	checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if e, err := ix.last(ctx, blockKey("S", 1)); err != nil || e.rev != 0 {
			return fmt.Errorf("marker of block 1 still there: %+v, %v", e, err)
		}
		return nil
	})
	if e, err := ix.last(ctx, blockKey("S", 11)); err != nil || e.rev == 0 || e.live {
		t.Fatalf("head block's marker = %+v, %v; want a marker", e, err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := len(ix.Blocks("S", 0, 0)); n != 0 {
			return fmt.Errorf("view holds %d blocks", n)
		}
		return nil
	})
	// A replica opened now finds no blocks but the head.
	other := openReplica(t, s, Options{MarkerTTL: time.Second}).ix
	sum, ok := other.Stream("S")
	if !ok || sum.Blocks != 0 || sum.Head == nil || sum.Head.LastSeq != 20 {
		t.Fatalf("new replica's summary = %+v, %v", sum, ok)
	}
}

func TestEncodedStreamNames(t *testing.T) {
	commitModes(t, func(t *testing.T, s *server.Server, open func(testing.TB) *Index) {
		ix := open(t)
		ctx := testCtx(t, 20*time.Second)
		names := []string{"plain_Name-1", "訂單", "Ünïcödé-ström", "a=b", "=x", "with:colon", "emoji🚀", "q?#%"}
		for _, name := range names {
			if _, err := ix.Commit(ctx, meta(name, 1, 10), 0, "r", "i"); err != nil {
				t.Fatalf("Commit %q: %v", name, err)
			}
		}
		reader := open(t)
		var got []string
		for _, sum := range reader.Streams() {
			got = append(got, sum.Stream)
		}
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(got, want) {
			t.Fatalf("Streams = %q; want %q", got, want)
		}
		for _, name := range names {
			if m, ok := reader.Lookup(name, 5); !ok || m.Stream != name {
				t.Errorf("Lookup(%q, 5) = %+v, %v", name, m, ok)
			}
			if h, _, err := reader.Head(ctx, name); err != nil || h.Stream != name {
				t.Errorf("Head(%q) = %+v, %v", name, h, err)
			}
		}
	})
}

func TestMalformedEntriesSkipped(t *testing.T) {
	s := testenv.RunNATS(t)
	var logs testenv.SyncBuffer
	ix := openReplica(t, s, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}).ix
	ctx := testCtx(t, 10*time.Second)
	commitChain(t, ix, "S", 1, 1, 10)
	good := meta("S", 11, 20)
	goodVal, _ := json.Marshal(&good)
	wrongKey := meta("S", 11, 20)
	wrongKeyVal, _ := json.Marshal(&wrongKey)
	for key, val := range map[string]string{
		"blk.S.21":       "{not json",
		"blk.S.31":       string(wrongKeyVal), // says 11, stored under 31
		"blk.S.x":        string(goodVal),
		"blk.=AA.1":      string(goodVal), // "\x00"
		"blk.=YWJj.1":    string(goodVal), // "abc" must be plain
		"blk.S.041":      string(goodVal),
		"head.=YS5i":     `{}`, // "a.b" is no stream name
		"head.T":         `{"stream":"T"}`,
		"blk.S.51":       `{"stream":"S","first_seq":51,"last_seq":50,"count":1}`,
		"blk.S.11.extra": string(goodVal),
	} {
		if _, err := ix.kv.Put(ctx, key, []byte(val)); err != nil {
			t.Fatalf("Put %s: %v", key, err)
		}
	}
	if _, err := ix.kv.Put(ctx, "blk.S.11", goodVal); err != nil {
		t.Fatalf("Put: %v", err)
	}
	check := func(ix *Index) error {
		blocks := ix.Blocks("S", 0, 0)
		if len(blocks) != 2 || blocks[0].FirstSeq != 1 || blocks[1].FirstSeq != 11 {
			return fmt.Errorf("view holds %d blocks: %+v", len(blocks), blocks)
		}
		if len(ix.Streams()) != 1 {
			return fmt.Errorf("view holds streams %+v", ix.Streams())
		}
		return nil
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error { return check(ix) })
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, key := range []string{"blk.S.21", "blk.S.31", "blk.S.x", "head.T", "blk.S.51"} {
			if !strings.Contains(logs.String(), "key="+key+" ") {
				return fmt.Errorf("no warning about %s in %q", key, logs.String())
			}
		}
		return nil
	})
	if err := check(openReplica(t, s, Options{}).ix); err != nil {
		t.Fatalf("replica loading malformed entries: %v", err)
	}
	// A head that does not decode is reported, with its revision.
	if _, err := ix.kv.Put(ctx, "head.U", []byte("[]")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, rev, err := ix.Head(ctx, "U"); !errors.Is(err, ErrCorrupt) || rev == 0 {
		t.Fatalf("Head of a corrupt entry = rev %d, %v; want ErrCorrupt with a revision", rev, err)
	}
}

func TestViewFollowsAcrossServerRestart(t *testing.T) {
	s := testenv.RunNATS(t)
	writer := openReplica(t, s, Options{}).ix
	reader := openReplica(t, s, Options{}).ix
	commitChain(t, writer, "S", 1, 2, 10)
	if err := reader.WaitFor(testCtx(t, 5*time.Second), "S", 20); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}

	testenv.RestartNATS(t, s)

	// Both replicas reconnect on their own; the writer's commit may fail
	// until then, and a retry with the same arguments is safe.
	m := meta("S", 21, 30)
	checkFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		ctx := testCtx(t, 2*time.Second)
		_, rev, err := writer.Head(ctx, "S")
		if err != nil {
			return err
		}
		if rev == 0 {
			t.Fatalf("the head did not survive the restart")
		}
		_, err = writer.Commit(ctx, m, rev, "leader-1", "inc-1")
		if errors.Is(err, ErrFenced) {
			// An earlier attempt landed and its reply was lost.
			if h, _, _ := writer.Head(ctx, "S"); h.LastSeq == 30 {
				return nil
			}
		}
		return err
	})
	t0 := time.Now()
	t.Logf("committed after restart")
	defer func() { t.Logf("reader saw it after %v", time.Since(t0)) }()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got, ok := reader.Lookup("S", 25); !ok || !got.Equal(&m) {
			return fmt.Errorf("reader's Lookup(25) = %+v, %v", got, ok)
		}
		return nil
	})
	if n := len(reader.Blocks("S", 0, 0)); n != 3 {
		t.Fatalf("reader holds %d blocks; want 3", n)
	}
}

func TestReplicaLoadsEntriesOutOfSequenceOrder(t *testing.T) {
	s := testenv.RunNATS(t)
	writer := openReplica(t, s, Options{}).ix
	ctx := testCtx(t, 20*time.Second)
	commitChain(t, writer, "S", 1, 40, 10)
	// Demote older blocks newest first, and expire a few: the bucket now
	// holds the entries in neither sequence nor commit order.
	for i := 39; i >= 0; i -= 2 {
		if err := writer.UpdateTiers(ctx, "S", uint64(i*10+1), []string{"blob"}); err != nil {
			t.Fatalf("UpdateTiers: %v", err)
		}
	}
	for _, first := range []uint64{1, 11, 201} {
		if err := writer.DeleteBlock(ctx, "S", first); err != nil {
			t.Fatalf("DeleteBlock: %v", err)
		}
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := len(writer.Blocks("S", 0, 0)); n != 37 {
			return fmt.Errorf("writer's view holds %d blocks", n)
		}
		return nil
	})
	reader := openReplica(t, s, Options{}).ix
	got, want := reader.Blocks("S", 0, 0), writer.Blocks("S", 0, 0)
	if !slices.EqualFunc(got, want, func(a, b BlockMeta) bool { return a.Equal(&b) }) {
		t.Fatalf("reader loaded %d blocks, writer holds %d", len(got), len(want))
	}
	ws, _ := writer.Stream("S")
	rs, _ := reader.Stream("S")
	if rs.Blocks != ws.Blocks || rs.Msgs != ws.Msgs || !reflect.DeepEqual(rs.Tiers, ws.Tiers) || rs.Tiers["memory"].Blocks != 18 {
		t.Fatalf("reader's summary %+v; writer's %+v", rs, ws)
	}
}
