package tier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nats-tiered/nts/tier"
)

// openFDs counts the process's open file descriptors, or returns -1 where
// /proc does not tell.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// readRange reads n bytes at off of key with GetRange or, with into, with
// GetRangeInto.
func readRange(ctx context.Context, f *tier.File, into bool, key string, off, n int64) ([]byte, error) {
	if !into {
		return f.GetRange(ctx, key, off, n)
	}
	buf := make([]byte, n)
	return buf, f.GetRangeInto(ctx, key, off, buf)
}

// TestFileReadsSeeChanges reads an object, changes it behind the store's
// back or through it, and reads again: every read sees the object as it is
// at its path, although the store keeps the handle of the first read open.
func TestFileReadsSeeChanges(t *testing.T) {
	ctx := context.Background()
	old := bytes.Repeat([]byte("o"), 4096)
	repl := bytes.Repeat([]byte("n"), 4096)
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, f *tier.File, path string)
		want    []byte // nil: not found
		wantErr error
	}{
		{"removed behind its back", func(t *testing.T, _ *tier.File, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, nil, tier.ErrNotFound},
		{"deleted by another store on the directory", func(t *testing.T, f *tier.File, _ string) {
			if err := newFile(t, f.Dir()).Delete(ctx, "S/k.blk"); err != nil {
				t.Fatal(err)
			}
		}, nil, tier.ErrNotFound},
		{"replaced by a rename behind its back", func(t *testing.T, _ *tier.File, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, repl, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, repl, nil},
		{"overwritten in place", func(t *testing.T, _ *tier.File, path string) {
			if err := os.WriteFile(path, repl[:100], 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, nil},
		{"put again through the store", func(t *testing.T, f *tier.File, _ string) {
			if err := f.Put(ctx, "S/k.blk", repl); err != nil {
				t.Fatal(err)
			}
		}, repl, nil},
		{"deleted through the store", func(t *testing.T, f *tier.File, _ string) {
			if err := f.Delete(ctx, "S/k.blk"); err != nil {
				t.Fatal(err)
			}
		}, nil, tier.ErrNotFound},
	} {
		for _, into := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/into=%v", tc.name, into), func(t *testing.T) {
				f := newFile(t, t.TempDir())
				if err := f.Put(ctx, "S/k.blk", old); err != nil {
					t.Fatal(err)
				}
				if got, err := readRange(ctx, f, into, "S/k.blk", 1000, 1000); err != nil || !bytes.Equal(got, old[1000:2000]) {
					t.Fatalf("first read: %q, %v", got, err)
				}
				tc.change(t, f, filepath.Join(f.Dir(), "S", "k.blk"))
				got, err := readRange(ctx, f, into, "S/k.blk", 10, 50)
				switch {
				case tc.wantErr != nil:
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("read after the change: %v, want %v", err, tc.wantErr)
					}
				case tc.want == nil: // overwritten with 100 bytes of the new content
					if err != nil || !bytes.Equal(got, repl[10:60]) {
						t.Fatalf("read after the change: %q, %v", got, err)
					}
					if _, err := readRange(ctx, f, into, "S/k.blk", 1000, 10); err == nil {
						t.Fatal("read past the end of the shortened file succeeded")
					}
				default:
					if err != nil || !bytes.Equal(got, tc.want[10:60]) {
						t.Fatalf("read after the change: %q, %v", got, err)
					}
				}
			})
		}
	}
}

func TestFileGetRangeIntoErrors(t *testing.T) {
	ctx := context.Background()
	f := newFile(t, t.TempDir())
	if err := f.Put(ctx, "S/k.blk", make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  string
		off  int64
		n    int
		want error // nil: any error
	}{
		{"missing", "S/other.blk", 0, 10, tier.ErrNotFound},
		{"invalid key", "../k.blk", 0, 10, tier.ErrInvalidKey},
		{"past the end", "S/k.blk", 95, 10, nil},
		{"negative offset", "S/k.blk", -1, 10, nil},
		{"offset past the end", "S/k.blk", 101, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.GetRangeInto(ctx, tc.key, tc.off, make([]byte, tc.n))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("GetRangeInto(%q, %d, %d): %v, want %v", tc.key, tc.off, tc.n, err, tc.want)
			}
		})
	}
}

// TestFileKeepsFewHandles reads more objects than the store keeps handles
// of, concurrently with deletes and puts of the same keys: every read
// returns the object or ErrNotFound, and the handles kept stay bounded.
func TestFileKeepsFewHandles(t *testing.T) {
	ctx := context.Background()
	f := newFile(t, t.TempDir())
	const objects = 300
	obj := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 512) }
	key := func(i int) string { return fmt.Sprintf("S/%03d.blk", i) }
	for i := range objects {
		if err := f.Put(ctx, key(i), obj(i)); err != nil {
			t.Fatal(err)
		}
	}
	before := openFDs(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			for round := range 3 {
				for i := g; i < objects; i += 2 {
					got, err := readRange(ctx, f, (i+round)%2 == 0, key(i), 100, 200)
					if err != nil && !errors.Is(err, tier.ErrNotFound) {
						errs <- err
						return
					}
					if err == nil && !bytes.Equal(got, obj(i)[100:300]) {
						errs <- fmt.Errorf("%s: read another object's bytes", key(i))
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < objects; i += 7 {
			if err := f.Delete(ctx, key(i)); err != nil {
				errs <- err
				return
			}
			if err := f.Put(ctx, key(i), obj(i)); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if after := openFDs(t); before >= 0 && after-before > 128 {
		t.Fatalf("%d descriptors open after reading %d objects, %d before: more than the 128 kept", after, objects, before)
	}
	for i := range objects {
		if got, err := f.GetRange(ctx, key(i), 0, 512); err != nil || !bytes.Equal(got, obj(i)) {
			t.Fatalf("%s after the churn: %v", key(i), err)
		}
	}
}
