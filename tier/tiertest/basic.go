package tiertest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-tiered/nts/tier"
)

// testRoundTrip puts objects of several shapes and reads each back whole.
func testRoundTrip(t *testing.T, tr tier.Tier) {
	every := make([]byte, 4*256)
	for i := range every {
		every[i] = byte(i)
	}
	cases := []struct {
		name string
		blk  []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{0}},
		{"every byte value", every},
		{"random 100KiB", randomBytes(100<<10, 1)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := blockKey(t, "RT", uint64(i+1), uint64(i+1))
			put(t, tr, key, c.blk)
			wantObject(t, tr, key, c.blk)
		})
	}
	// Every object is still there, unchanged by the later puts.
	for i, c := range cases {
		wantObject(t, tr, blockKey(t, "RT", uint64(i+1), uint64(i+1)), c.blk)
	}
}

// testGetRange reads ranges inside, at the edges of and past an object.
func testGetRange(t *testing.T, tr tier.Tier) {
	blk := randomBytes(1000, 2)
	key := blockKey(t, "GR", 1, 10)
	put(t, tr, key, blk)
	cases := []struct {
		name   string
		off, n int64
		ok     bool
	}{
		{"start", 0, 10, true},
		{"middle", 400, 100, true},
		{"end", 990, 10, true},
		{"last byte", 999, 1, true},
		{"whole", 0, 1000, true},
		{"zero at start", 0, 0, true},
		{"zero in middle", 500, 0, true},
		{"zero at end", 1000, 0, true},
		{"runs past end", 995, 10, false},
		{"starts at end", 1000, 1, false},
		{"starts past end", 2000, 1, false},
		{"zero past end", 1001, 0, false},
		{"longer than object", 0, 1001, false},
		{"negative offset", -1, 5, false},
		{"negative length", 0, -1, false},
		{"huge length", 1, 1<<63 - 1, false},
		{"huge offset", 1<<63 - 5, 10, false},
		{"huge offset, zero length", 1<<63 - 1, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tr.GetRange(t.Context(), key, c.off, c.n)
			if !c.ok {
				if err == nil {
					t.Fatalf("GetRange(%d, %d) = %d bytes, want an error", c.off, c.n, len(got))
				}
				if errors.Is(err, tier.ErrNotFound) {
					t.Fatalf("GetRange(%d, %d): %v; the object exists, so not ErrNotFound", c.off, c.n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", c.off, c.n, err)
			}
			if want := blk[c.off : c.off+c.n]; !bytes.Equal(got, want) {
				t.Fatalf("GetRange(%d, %d) = %d bytes %s, want %d bytes %s", c.off, c.n, len(got), head(got), len(want), head(want))
			}
		})
	}
	wantObject(t, tr, key, blk)
}

// testStat checks the size, key and modification time Stat reports.
func testStat(t *testing.T, tr tier.Tier) {
	key := blockKey(t, "ST", 5, 9)
	before := time.Now()
	put(t, tr, key, randomBytes(12345, 3))
	after := time.Now()
	info, err := tr.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != 12345 {
		t.Fatalf("Stat = %+v, want key %q size 12345", info, key)
	}
	// Object stores keep whole seconds; allow for that and a little skew.
	const slack = 2 * time.Second
	if info.ModTime.Before(before.Add(-slack)) || info.ModTime.After(after.Add(slack)) {
		t.Fatalf("Stat ModTime %v, want between %v and %v", info.ModTime, before, after)
	}
}

// testDelete removes objects, missing or not, and checks they are gone.
func testDelete(t *testing.T, tr tier.Tier) {
	ctx := t.Context()
	gone, kept := blockKey(t, "DE", 1, 1), blockKey(t, "DE", 2, 2)
	put(t, tr, gone, []byte("gone"))
	put(t, tr, kept, []byte("kept"))
	if err := tr.Delete(ctx, gone); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := tr.Get(ctx, gone)
	wantNotFound(t, "Get after Delete", err)
	_, err = tr.GetRange(ctx, gone, 0, 1)
	wantNotFound(t, "GetRange after Delete", err)
	_, err = tr.Stat(ctx, gone)
	wantNotFound(t, "Stat after Delete", err)
	if err := tr.Delete(ctx, gone); err != nil {
		t.Fatalf("Delete of a deleted key: %v", err)
	}
	if err := tr.Delete(ctx, blockKey(t, "NEVER", 1, 1)); err != nil {
		t.Fatalf("Delete of a never-stored key: %v", err)
	}
	wantObject(t, tr, kept, []byte("kept"))
	wantKeys(t, tr, "", []string{kept}, nil)
	// A deleted key can be stored again.
	put(t, tr, gone, []byte("back"))
	wantObject(t, tr, gone, []byte("back"))
}

// testList lists keys of several streams by prefix.
func testList(t *testing.T, tr tier.Tier) {
	sizes := map[string]int{}
	var keys []string
	for i, s := range []string{"B", "A", "AB", "A-1"} {
		for j := uint64(3); j > 0; j-- {
			k := blockKey(t, s, j*100+1, j*100+100)
			keys = append(keys, k)
			sizes[k] = i*10 + int(j)
			put(t, tr, k, randomBytes(sizes[k], j))
		}
	}
	slices.Sort(keys)
	filter := func(prefix string) []string {
		var out []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "A", "A/", "AB/", "A-", "B/", "B/0000000000000000020", "B/00000000000000000201-", "C/", "Z"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			wantKeys(t, tr, prefix, filter(prefix), sizes)
		})
	}
	// Deleted keys are no longer listed.
	del := blockKey(t, "A", 201, 300)
	if err := tr.Delete(t.Context(), del); err != nil {
		t.Fatal(err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == del })
	wantKeys(t, tr, "A/", filter("A/"), sizes)
	wantKeys(t, tr, "", keys, sizes)
}

// testNotFound reads keys that were never stored, including a key that is a
// prefix of stored keys (a directory to a file store).
func testNotFound(t *testing.T, tr tier.Tier) {
	ctx := t.Context()
	key := blockKey(t, "NF", 1, 1)
	_, err := tr.Get(ctx, key)
	wantNotFound(t, "Get", err)
	_, err = tr.GetRange(ctx, key, 0, 1)
	wantNotFound(t, "GetRange", err)
	_, err = tr.Stat(ctx, key)
	wantNotFound(t, "Stat", err)
	wantKeys(t, tr, "", nil, nil)

	put(t, tr, key, []byte("x"))
	for _, k := range []string{"NF", blockKey(t, "NF", 1, 2), key + "x", "NF/00000000000000000001"} {
		_, err := tr.Get(ctx, k)
		wantNotFound(t, "Get("+k+")", err)
		_, err = tr.GetRange(ctx, k, 0, 1)
		wantNotFound(t, "GetRange("+k+")", err)
		_, err = tr.Stat(ctx, k)
		wantNotFound(t, "Stat("+k+")", err)
		if err := tr.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q) of a missing key: %v", k, err)
		}
	}
	wantObject(t, tr, key, []byte("x"))
}

// testOverwrite replaces an object with a smaller one and a larger one.
func testOverwrite(t *testing.T, tr tier.Tier) {
	ctx := t.Context()
	key := blockKey(t, "OW", 1, 1)
	for i, size := range []int{1000, 10, 5000, 0, 7} {
		blk := randomBytes(size, uint64(i+10))
		put(t, tr, key, blk)
		wantObject(t, tr, key, blk)
		wantKeys(t, tr, "OW/", []string{key}, map[string]int{key: size})
		if _, err := tr.GetRange(ctx, key, int64(size), 1); err == nil {
			t.Fatalf("GetRange past the end of the %d-byte replacement succeeded", size)
		}
	}
}

// testValidKeys round-trips keys that are not block keys but are made of
// path-safe segments.
func testValidKeys(t *testing.T, tr tier.Tier) {
	keys := []string{
		"a",
		"x/y/z/deep",
		"with space/and more",
		"ünïcødé/ключ-日本",
		"dots/..name",
		"dots/name.",
		"dots/...",
		"S/" + strings.Repeat("k", 255),
	}
	sizes := map[string]int{}
	for i, k := range keys {
		blk := randomBytes(i+1, uint64(i))
		sizes[k] = len(blk)
		put(t, tr, k, blk)
		wantObject(t, tr, k, blk)
	}
	slices.Sort(keys)
	wantKeys(t, tr, "", keys, sizes)
	wantKeys(t, tr, "dots/.", []string{"dots/...", "dots/..name"}, sizes)
}

// testInvalidKeys checks every operation refuses keys that must not reach a
// path or an object key, and that nothing is stored.
func testInvalidKeys(t *testing.T, tr tier.Tier) {
	ctx := t.Context()
	bad := []string{
		"",
		"/abs",
		"/",
		"a/",
		"a//b",
		".",
		"..",
		"../x",
		"a/../b",
		"a/./b",
		"a/..",
		`a\b`,
		`..\x`,
		"a\x00b",
		"a\nb",
		"a\tb",
		"a\x7fb",
		"\xff\xfe",
		"a/" + tier.TempPrefix + "x",
		strings.Repeat("k", 256),
		strings.Repeat("k/", 600) + "k",
	}
	for _, key := range bad {
		t.Run("", func(t *testing.T) {
			wantInvalid := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, tier.ErrInvalidKey) {
					t.Errorf("%s(%q): error %v, want one wrapping tier.ErrInvalidKey", op, key, err)
				}
			}
			wantInvalid("Put", tr.Put(ctx, key, []byte("x")))
			_, err := tr.Get(ctx, key)
			wantInvalid("Get", err)
			_, err = tr.GetRange(ctx, key, 0, 1)
			wantInvalid("GetRange", err)
			_, err = tr.Stat(ctx, key)
			wantInvalid("Stat", err)
			wantInvalid("Delete", tr.Delete(ctx, key))
		})
	}
	for _, prefix := range []string{"/abs", "../", "a/../", "a//", `a\b`, "a\x00", "\xff"} {
		if _, err := tr.List(ctx, prefix); !errors.Is(err, tier.ErrInvalidKey) {
			t.Errorf("List(%q): error %v, want one wrapping tier.ErrInvalidKey", prefix, err)
		}
	}
	wantKeys(t, tr, "", nil, nil)
}
