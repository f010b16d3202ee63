package tiertest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-tiered/nts/tier"
)

// testCancel calls every operation with a cancelled context: each fails with
// an error wrapping context.Canceled and the store is left as it was.
func testCancel(t *testing.T, tr tier.Tier) {
	key, fresh := blockKey(t, "CA", 1, 1), blockKey(t, "CA", 2, 2)
	orig := randomBytes(100, 7)
	put(t, tr, key, orig)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantCanceled := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v, want one wrapping context.Canceled", op, err)
		}
	}
	wantCanceled("Put (overwrite)", tr.Put(ctx, key, []byte("replacement")))
	wantCanceled("Put (new key)", tr.Put(ctx, fresh, []byte("new")))
	_, err := tr.Get(ctx, key)
	wantCanceled("Get", err)
	_, err = tr.GetRange(ctx, key, 0, 10)
	wantCanceled("GetRange", err)
	_, err = tr.Stat(ctx, key)
	wantCanceled("Stat", err)
	_, err = tr.List(ctx, "")
	wantCanceled("List", err)
	wantCanceled("Delete", tr.Delete(ctx, key))

	wantObject(t, tr, key, orig)
	_, err = tr.Stat(t.Context(), fresh)
	wantNotFound(t, "Stat of a key whose Put was cancelled", err)
	wantKeys(t, tr, "", []string{key}, map[string]int{key: len(orig)})
}

// testConcurrent runs goroutines that each put, read, range-read, stat and
// delete a key of their own and also overwrite and read one shared key. A
// read must never see a torn or mixed object.
func testConcurrent(t *testing.T, tr tier.Tier) {
	const workers, rounds, size = 8, 12, 16 << 10
	ctx := t.Context()
	shared := blockKey(t, "SHARED", 1, 1)
	own := func(w int) string { return blockKey(t, "W"+strconv.Itoa(w), 1, 1) }
	// Every byte of value(w, r) is w*rounds+r, so a read of the shared key
	// shows whether it saw one whole object.
	value := func(w, r int) []byte { return bytes.Repeat([]byte{byte(w*rounds + r)}, size) }
	uniform := func(b []byte) bool { return len(b) > 0 && bytes.Count(b, b[:1]) == len(b) }

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := own(w)
			for r := range rounds {
				if !concurrentRound(t, tr, key, shared, value(w, r), r%3 == 1, uniform) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	keys := []string{shared}
	for w := range workers {
		wantObject(t, tr, own(w), value(w, rounds-1))
		keys = append(keys, own(w))
	}
	got, err := tr.Get(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size || !uniform(got) || int(got[0]) >= workers*rounds {
		t.Fatalf("shared key holds %d bytes %s, want one of the values written", len(got), head(got))
	}
	slices.Sort(keys)
	wantKeys(t, tr, "", keys, nil)
}

// concurrentRound is one round of one testConcurrent goroutine. It reports
// failures with t.Errorf and returns false after the first.
func concurrentRound(t *testing.T, tr tier.Tier, key, shared string, v []byte, del bool, uniform func([]byte) bool) bool {
	ctx := t.Context()
	fail := func(format string, args ...any) bool {
		t.Errorf(format, args...)
		return false
	}
	if err := tr.Put(ctx, key, v); err != nil {
		return fail("Put(%q): %v", key, err)
	}
	if got, err := tr.Get(ctx, key); err != nil || !bytes.Equal(got, v) {
		return fail("Get(%q) = %s, %v; want its own value %s", key, head(got), err, head(v))
	}
	if got, err := tr.GetRange(ctx, key, 100, 1000); err != nil || !bytes.Equal(got, v[100:1100]) {
		return fail("GetRange(%q) = %s, %v", key, head(got), err)
	}
	if err := tr.Put(ctx, shared, v); err != nil {
		return fail("Put(%q): %v", shared, err)
	}
	if got, err := tr.Get(ctx, shared); err != nil || len(got) != len(v) || !uniform(got) {
		return fail("Get(%q) = %d bytes %s, %v; want one whole value", shared, len(got), head(got), err)
	}
	if got, err := tr.GetRange(ctx, shared, int64(len(v)-10), 10); err != nil || len(got) != 10 || !uniform(got) {
		return fail("GetRange(%q) = %s, %v", shared, head(got), err)
	}
	if info, err := tr.Stat(ctx, shared); err != nil || info.Size != int64(len(v)) {
		return fail("Stat(%q) = %+v, %v", shared, info, err)
	}
	if _, err := tr.List(ctx, "W"); err != nil {
		return fail("List: %v", err)
	}
	if del {
		if err := tr.Delete(ctx, key); err != nil {
			return fail("Delete(%q): %v", key, err)
		}
		if _, err := tr.Get(ctx, key); !errors.Is(err, tier.ErrNotFound) {
			return fail("Get(%q) after Delete: %v, want ErrNotFound", key, err)
		}
	}
	return true
}

// testLarge round-trips a LargeSize object and reads ranges at its end and
// across the 16 MiB mark.
func testLarge(t *testing.T, tr tier.Tier) {
	ctx := t.Context()
	blk := randomBytes(LargeSize, 99)
	key := blockKey(t, "LG", 1, 1_000_000)
	put(t, tr, key, blk)
	t.Cleanup(func() { _ = tr.Delete(context.Background(), key) })

	got, err := tr.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blk) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(blk))
	}
	info, err := tr.Stat(ctx, key)
	if err != nil || info.Size != LargeSize {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, LargeSize)
	}
	for _, r := range []struct{ off, n int64 }{
		{LargeSize - 1<<20, 1 << 20},
		{LargeSize - 1, 1},
		{16<<20 - 100, 200},
	} {
		got, err := tr.GetRange(ctx, key, r.off, r.n)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r.off, r.n, err)
		}
		if !bytes.Equal(got, blk[r.off:r.off+r.n]) {
			t.Fatalf("GetRange(%d, %d) = %s, want %s", r.off, r.n, head(got), head(blk[r.off:]))
		}
	}
	if _, err := tr.GetRange(ctx, key, LargeSize-1, 2); err == nil {
		t.Fatal("GetRange past the end of the large object succeeded")
	}
}
