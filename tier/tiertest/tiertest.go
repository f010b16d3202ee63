// Package tiertest holds the conformance suite every tier.Tier store must
// pass: byte-exact round trips, ranged reads and their bounds, Stat, Delete,
// List, not-found and invalid-key errors, overwrites, concurrent use, context
// cancellation and large objects.
//
// A store's test calls Run with a function that returns a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		tiertest.Run(t, func(t *testing.T) tier.Tier {
//			f, err := tier.NewFile(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return f
//		})
//	}
package tiertest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nats-tiered/nts/tier"
)

// LargeSize is the size of the object the Large subtest round-trips: larger
// than any block nts seals by default and than the blob store's default
// multipart part size.
const LargeSize = 32 << 20

// Run runs the conformance suite as subtests of t. newTier is called once by
// each subtest, with the subtest's t, and must return an empty store that is
// not shared with other subtests; it should register any cleanup with
// t.Cleanup. A store that holds at least LargeSize bytes and 64 objects
// passes.
func Run(t *testing.T, newTier func(t *testing.T) tier.Tier) {
	t.Run("Name", func(t *testing.T) {
		if name := newTier(t).Name(); name == "" {
			t.Fatal("Name() is empty")
		}
	})
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newTier(t)) })
	t.Run("GetRange", func(t *testing.T) { testGetRange(t, newTier(t)) })
	t.Run("Stat", func(t *testing.T) { testStat(t, newTier(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newTier(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newTier(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newTier(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newTier(t)) })
	t.Run("ValidKeys", func(t *testing.T) { testValidKeys(t, newTier(t)) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, newTier(t)) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, newTier(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newTier(t)) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newTier(t)) })
}

// blockKey returns the key of stream's block first..last.
func blockKey(t testing.TB, stream string, first, last uint64) string {
	t.Helper()
	k, err := tier.Key(stream, first, last)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b) // never fails
	return b
}

// put stores blk under key or fails the test.
func put(t testing.TB, tr tier.Tier, key string, blk []byte) {
	t.Helper()
	if err := tr.Put(t.Context(), key, blk); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(blk), err)
	}
}

// wantObject fails the test unless key holds exactly want, by Get and Stat.
func wantObject(t testing.TB, tr tier.Tier, key string, want []byte) {
	t.Helper()
	got, err := tr.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %s, want %d bytes %s", key, len(got), head(got), len(want), head(want))
	}
	info, err := tr.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if info.Size != int64(len(want)) || info.Key != key {
		t.Fatalf("Stat(%q) = key %q size %d, want size %d", key, info.Key, info.Size, len(want))
	}
}

// wantNotFound fails the test unless err wraps tier.ErrNotFound.
func wantNotFound(t testing.TB, op string, err error) {
	t.Helper()
	if !errors.Is(err, tier.ErrNotFound) {
		t.Fatalf("%s: error %v, want one wrapping tier.ErrNotFound", op, err)
	}
}

// wantKeys fails the test unless List(prefix) returns exactly keys, in order,
// with the sizes in sizes (when sizes is not nil).
func wantKeys(t testing.TB, tr tier.Tier, prefix string, keys []string, sizes map[string]int) {
	t.Helper()
	infos, err := tr.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	got := make([]string, len(infos))
	for i, in := range infos {
		got[i] = in.Key
		if sizes != nil && in.Size != int64(sizes[in.Key]) {
			t.Errorf("List(%q): %q has size %d, want %d", prefix, in.Key, in.Size, sizes[in.Key])
		}
		if in.ModTime.IsZero() {
			t.Errorf("List(%q): %q has a zero ModTime", prefix, in.Key)
		}
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, keys)
	}
}

// head shows the first bytes of b in a failure message.
func head(b []byte) string {
	const n = 16
	if len(b) > n {
		return fmt.Sprintf("[% x …]", b[:n])
	}
	return fmt.Sprintf("[% x]", b)
}
