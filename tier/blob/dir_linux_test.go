//go:build linux

package blob_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nats-tiered/nts/tier/blob"
)

// TestDirWritesAroundPageCache: a dir:// store, which the memory and file
// tiers shield from reads, writes a block's whole pages around the page
// cache, so that archiving does not fill the cache with copies nothing
// reads. Of a block written from page-aligned memory only the tail that
// does not fill a page is left cached.
func TestDirWritesAroundPageCache(t *testing.T) {
	dir := t.TempDir()
	probe, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("no O_DIRECT in %s: %v", dir, err)
	}
	probe.Close()
	b, err := blob.Open(context.Background(), "dir://"+filepath.ToSlash(dir), blob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	raw := make([]byte, 1<<20+100+2*page)
	off := page - int(uintptr(unsafe.Pointer(&raw[0]))%page)
	blk := raw[off : off+1<<20+100]
	for i := range blk {
		blk[i] = byte(i * 31)
	}
	if err := b.Put(context.Background(), "S/b.blk", blk); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "S", "b.blk")
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, len(blk), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	cached := 0
	for _, v := range vec {
		cached += int(v & 1)
	}
	if cached > 1 {
		t.Errorf("%d of the block's %d pages are in the page cache; want only the tail's", cached, len(vec))
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, blk) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}
}
