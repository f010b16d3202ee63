//go:build linux

package tier

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestFilePutDirect puts blocks of many lengths, from page-aligned memory and
// from memory that is not, into a store that writes around the page cache,
// and reads each back byte for byte. A page-aligned block is written around
// the page cache: of its pages, only the tail that does not fill one is left
// cached.
func TestFilePutDirect(t *testing.T) {
	f, err := NewFile(t.TempDir(), WriteAround())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 17, 1 << 20, 1<<20 + 123, 3<<20 + 4095} {
		for _, aligned := range []bool{true, false} {
			blk := pageAligned(n, aligned)
			for i := range blk {
				blk[i] = byte(rng.Uint32())
			}
			want := bytes.Clone(blk)
			key := fmt.Sprintf("S/%d-%v.blk", n, aligned)
			if err := f.Put(ctx, key, blk); err != nil {
				t.Fatalf("put %d bytes (aligned %v): %v", n, aligned, err)
			}
			if !bytes.Equal(blk, want) {
				t.Fatalf("put %d bytes (aligned %v) changed the caller's block", n, aligned)
			}
			path := filepath.Join(f.Dir(), filepath.FromSlash(key))
			if f.buffered.Load() {
				t.Skip("this file system refuses O_DIRECT; blocks are written through the page cache")
			}
			if aligned && n >= directAlign {
				cached, pages := cachedPages(t, path)
				if tail := n % directAlign; (tail == 0 && cached != 0) || cached > 1 {
					t.Errorf("put %d bytes: %d of its %d pages are in the page cache; want only the tail's", n, cached, pages)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("put %d bytes (aligned %v): read back %d bytes, not the same", n, aligned, len(got))
			}
		}
	}
}

// TestFilePutDirectWithoutAIO: where AIO is off, the direct write is
// pwrite(2).
func TestFilePutDirectWithoutAIO(t *testing.T) {
	aioOnce.Do(initAIO) // settle whether AIO is on before turning it off
	// With no context at all, any use of AIO would fail the test.
	was, ctx := aioOff.Swap(true), aio
	aio = nil
	t.Cleanup(func() { aioOff.Store(was); aio = ctx })
	f, err := NewFile(t.TempDir(), WriteAround())
	if err != nil {
		t.Fatal(err)
	}
	blk := pageAligned(1<<20, true)
	for i := range blk {
		blk[i] = byte(i * 13)
	}
	if err := f.Put(context.Background(), "S/b.blk", blk); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.Dir(), "S", "b.blk")
	if f.buffered.Load() {
		t.Skip("this file system refuses O_DIRECT; blocks are written through the page cache")
	}
	if cached, pages := cachedPages(t, path); cached != 0 {
		t.Errorf("%d of %d pages cached: the block was written through the page cache", cached, pages)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, blk) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}
}

// TestWriteDirectRefused: a write that O_DIRECT refuses (memory not aligned
// to the device's block) reports false and leaves the descriptor's flags as
// they were, so that the caller can write the block through the page cache.
func TestWriteDirectRefused(t *testing.T) {
	tmp, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	p := pageAligned(2*directAlign+1, true)[1:]
	direct, err := writeDirect(tmp.Fd(), p)
	if err != nil || direct {
		t.Fatalf("direct write of misaligned memory: direct %v, err %v; want false, nil", direct, err)
	}
	fl, err := unix.FcntlInt(tmp.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_DIRECT != 0 {
		t.Fatal("O_DIRECT left set after the refusal")
	}
}

// TestFilePutBuffered: a store made without WriteAround, and one whose file
// system refused O_DIRECT, write every block through the page cache, whole.
func TestFilePutBuffered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []FileOption
		refused bool
	}{{"default", nil, false}, {"write-around refused", []FileOption{WriteAround()}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFile(t.TempDir(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			f.buffered.Store(tc.refused)
			blk := pageAligned(1<<20+5, true)
			for i := range blk {
				blk[i] = byte(i * 7)
			}
			if err := f.Put(context.Background(), "S/b.blk", blk); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(f.Dir(), "S", "b.blk")
			// Written through the page cache, the pages stay cached
			// after the fsync (on a machine with memory to spare).
			if cached, pages := cachedPages(t, path); cached <= 1 {
				t.Errorf("%d of %d pages cached: the block was written around the page cache", cached, pages)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, blk) {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
		})
	}
}

// pageAligned returns n bytes starting at a page boundary, or one byte past
// one.
func pageAligned(n int, aligned bool) []byte {
	buf := make([]byte, n+2*directAlign)
	off := directAlign - int(uintptr(unsafe.Pointer(&buf[0]))%directAlign)
	if !aligned {
		off++
	}
	return buf[off : off+n : off+n]
}

// cachedPages reports how many of the file's pages are in the page cache,
// and how many it has.
func cachedPages(t *testing.T, path string) (cached, pages int) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	ps := os.Getpagesize()
	vec := make([]byte, (len(m)+ps-1)/ps)
	if len(m) > 0 {
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
	}
	for _, v := range vec {
		cached += int(v & 1)
	}
	return cached, len(vec)
}
