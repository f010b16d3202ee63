package tier_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/tier"
)

// subjectBlock seals n messages on subjects "k.<i%keys>" with a subject
// index and returns its key and bytes.
func subjectBlock(t *testing.T, n, keys int) (string, []byte) {
	t.Helper()
	b, err := block.NewBuilder(block.Options{Stream: "KV_B", FrameSize: 1 << 10, Subjects: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := block.Msg{Seq: uint64(i + 1), Subject: fmt.Sprintf("k.%d", i%keys), Data: make([]byte, 100), Time: int64(i), Mark: uint8(i % 3)}
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	key, err := tier.Key("KV_B", meta.FirstSeq, meta.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	return key, blk
}

func TestControllerRead(t *testing.T) {
	ctx := context.Background()
	c, s := newController(t)
	key, blk := subjectBlock(t, 300, 10)
	if _, err := c.Put(ctx, key, blk); err != nil {
		t.Fatal(err)
	}
	lookup := func(r *block.Reader) []block.Entry { return r.Subject("k.4") }
	want := []block.Entry{}
	for i := 4; i < 300; i += 10 {
		want = append(want, block.Entry{Seq: uint64(i + 1), Mark: uint8(i % 3)})
	}

	t.Run("hottest first", func(t *testing.T) {
		var got []block.Entry
		var from string
		err := c.Read(ctx, key, int64(len(blk)), func(r *block.Reader, tier string) error {
			got, from = lookup(r), tier
			return nil
		})
		if err != nil || from != "memory" || !slices.Equal(got, want) {
			t.Fatalf("Read from %s: %v, %v", from, got, err)
		}
	})

	t.Run("caller error as is", func(t *testing.T) {
		mine := errors.New("not this one")
		calls := 0
		err := c.Read(ctx, key, 0, func(*block.Reader, string) error {
			calls++
			return fmt.Errorf("wrapped: %w", mine)
		})
		if !errors.Is(err, mine) || errors.Is(err, tier.ErrUnavailable) || calls != 1 {
			t.Fatalf("Read returned %v after %d calls; want the caller's error after 1", err, calls)
		}
		notFound := c.Read(ctx, key, 0, func(r *block.Reader, _ string) error {
			_, err := r.Get(ctx, 9999)
			return err
		})
		if !errors.Is(notFound, block.ErrNotFound) {
			t.Fatalf("Read of a seq the block does not hold: %v", notFound)
		}
	})

	t.Run("lost and corrupt copies fall through", func(t *testing.T) {
		if err := s.mem.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		// Damage the file copy's frames, not its footer: it opens, then
		// a frame read fails its checksum.
		path := filepath.Join(s.fileDir, filepath.FromSlash(key))
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 16; i < 2000; i++ {
			raw[i] ^= 0x55
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		var tiers []string
		var m block.Msg
		err = c.Read(ctx, key, int64(len(blk)), func(r *block.Reader, tier string) error {
			tiers = append(tiers, tier)
			var err error
			m, err = r.Get(ctx, 1)
			return err
		})
		// The memory tier's reader is still cached, and its frame read
		// misses: that falls through too.
		if err != nil || !slices.Equal(tiers, []string{"memory", "file", "blob"}) || m.Seq != 1 || m.Subject != "k.0" {
			t.Fatalf("Read through tiers %v: seq %d, %v", tiers, m.Seq, err)
		}
	})

	t.Run("no copy", func(t *testing.T) {
		for _, tr := range []tier.Tier{s.file, s.blob} {
			if err := tr.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		c2, _ := newController(t)
		called := false
		err := c2.Read(ctx, key, 0, func(*block.Reader, string) error { called = true; return nil })
		if !errors.Is(err, tier.ErrUnavailable) || called {
			t.Fatalf("Read with no copy: %v (fn called: %v)", err, called)
		}
	})
}
