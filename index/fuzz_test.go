package index

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"
)

// FuzzApplyEntry feeds the view what its watch may read from the bucket,
// which anyone with access to it can write: any two keys and values, each
// as a put or a delete marker, while the view loads or follows. An entry
// that does not decode is skipped and leaves no block under its key; none
// panics, and the view stays sorted, counted and answering lookups with
// blocks that hold what was asked.
func FuzzApplyEntry(f *testing.F) {
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	b10, b20 := meta("S", 10, 19), meta("S", 20, 29)
	head := Head{Stream: "S", LastSeq: 19, Block: b10, Leader: "a", Committed: 1}
	wide := meta("✓", 1, 1<<40)
	wide.Count, wide.Tiers = 3, []string{"blob", "blob"}
	f.Add(blockKey("S", 10), enc(b10), false, blockKey("S", 20), enc(b20), false, uint64(15))
	f.Add(headKey("S"), enc(head), false, blockKey("S", 10), enc(b10), true, uint64(10))
	f.Add(blockKey("✓", 1), enc(wide), false, blockKey("S", 10), []byte("{"), false, uint64(1<<39))
	f.Add(blockKey("S", 10), enc(b20), false, "blk.S.010", enc(b10), false, uint64(25))
	f.Add(headKey("S"), enc(Head{Stream: "S", LastSeq: 29, Block: b20}), false, headKey("T"), enc(head), false, uint64(0))
	moved := b10
	moved.Tiers = []string{"blob"}
	f.Add(blockKey("S", 10), enc(b10), false, blockKey("S", 10), enc(moved), false, uint64(19))
	f.Add(blockKey("S", 10), enc(b10), false, blockKey("S", 10), enc(b20), false, uint64(12))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, key1 string, val1 []byte, del1 bool, key2 string, val2 []byte, del2 bool, seq uint64) {
		for _, loading := range []bool{false, true} {
			ix := &Index{log: log}
			ix.view.init()
			if loading {
				ix.view.startLoad()
			}
			// want is what the view must hold for each block key applied
			// last: the entry decoded, or nothing.
			type ref struct {
				stream string
				first  uint64
			}
			want := map[ref]*BlockMeta{}
			for _, e := range []struct {
				key string
				val []byte
				del bool
			}{{key1, val1, del1}, {key2, val2, del2}} {
				var err error
				switch {
				case strings.HasPrefix(e.key, blkPrefix):
					err = ix.applyBlock(e.key, e.val, e.del)
					stream, first, kerr := parseBlockKey(e.key)
					switch {
					case kerr != nil && err == nil:
						t.Fatalf("block entry of bad key %q applied", e.key)
					case kerr != nil:
						// Skipped: no block stands under a key that does not parse.
					case err == nil && !e.del:
						m, derr := decodeBlock(stream, first, e.val)
						if derr != nil {
							t.Fatalf("%q applied, but does not decode: %v", e.key, derr)
						}
						want[ref{stream, first}] = &m
					default:
						want[ref{stream, first}] = nil
					}
				case strings.HasPrefix(e.key, headPrefix):
					err = ix.applyHead(e.key, e.val, 1, e.del)
					if _, kerr := parseHeadKey(e.key); kerr != nil && err == nil {
						t.Fatalf("head entry of bad key %q applied", e.key)
					}
				}
				if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
					t.Fatalf("%q: %v is neither ErrCorrupt nor ErrInvalid", e.key, err)
				}
			}
			ix.view.finishLoad()
			checkView(t, ix, seq)
			for r, m := range want {
				got, ok := ix.Block(r.stream, r.first)
				switch {
				case m == nil && ok:
					t.Fatalf("loading %v: %v holds a block after a delete or a bad entry", loading, r)
				case m != nil && (!ok || !got.Equal(m)):
					t.Fatalf("loading %v: %v holds %+v, %v; want %+v", loading, r, got, ok, *m)
				}
			}
		}
	})
}

// checkView checks that every stream of the view is held under its name,
// has blocks or a head, holds valid blocks sorted by first sequence with
// totals that add up, and answers lookups of seq with a block holding it.
func checkView(t *testing.T, ix *Index, seq uint64) {
	t.Helper()
	v := &ix.view
	v.mu.RLock()
	names := map[string]bool{}
	for name, s := range v.streams {
		names[name] = true
		if s.name != name || (len(s.blocks) == 0 && !s.hasHead) {
			t.Fatalf("stream %q: view of %q with %d blocks, head %v", name, s.name, len(s.blocks), s.hasHead)
		}
		var msgs uint64
		var raw, size int64
		tiers := map[string]TierUsage{}
		for i := range s.blocks {
			m := &s.blocks[i]
			if err := m.Validate(); err != nil || m.Stream != name {
				t.Fatalf("stream %q holds block %+v: %v", name, *m, err)
			}
			if i > 0 && s.blocks[i-1].FirstSeq >= m.FirstSeq {
				t.Fatalf("stream %q: block %d after block %d", name, m.FirstSeq, s.blocks[i-1].FirstSeq)
			}
			msgs, raw, size = msgs+m.Count, raw+m.RawSize, size+m.Size
			for _, tier := range m.Tiers {
				u := tiers[tier]
				u.Blocks++
				u.Bytes += m.Size
				tiers[tier] = u
			}
		}
		if s.msgs != msgs || s.raw != raw || s.size != size || !maps.Equal(s.tiers, tiers) {
			t.Fatalf("stream %q counts %d msgs, %d raw, %d bytes, tiers %v; its blocks %d, %d, %d, %v",
				name, s.msgs, s.raw, s.size, s.tiers, msgs, raw, size, tiers)
		}
		if s.hasHead && (s.head.Stream != name || s.head.Block.Stream != name) {
			t.Fatalf("stream %q holds the head of %q", name, s.head.Stream)
		}
	}
	v.mu.RUnlock()
	for _, sum := range ix.Streams() {
		if !names[sum.Stream] {
			t.Fatalf("Streams lists %q, which the view does not hold", sum.Stream)
		}
		delete(names, sum.Stream)
		if m, ok := ix.Lookup(sum.Stream, seq); ok && (seq < m.FirstSeq || seq > m.LastSeq) {
			t.Fatalf("Lookup(%q, %d) = block %d-%d", sum.Stream, seq, m.FirstSeq, m.LastSeq)
		}
		if bs := ix.Blocks(sum.Stream, seq, 2); len(bs) > 0 && bs[0].LastSeq < seq {
			t.Fatalf("Blocks(%q, %d) starts with block %d-%d", sum.Stream, seq, bs[0].FirstSeq, bs[0].LastSeq)
		}
		if m, ok := ix.LookupTime(sum.Stream, time.Unix(0, int64(seq))); ok && m.LastTime < int64(seq) {
			t.Fatalf("LookupTime(%q, %d) = block ending at %d", sum.Stream, int64(seq), m.LastTime)
		}
	}
	if len(names) > 0 {
		t.Fatalf("Streams leaves out %v", names)
	}
}
