//go:build linux

package tier

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// aioAvailable reports whether this kernel and sandbox give an AIO context.
func aioAvailable() bool {
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return false
	}
	unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
	return true
}

// TestSyncFileConcurrent syncs more files at once than the AIO ring holds,
// and their directory, and checks every file still reads back whole.
func TestSyncFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 3 * aioDepth
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			if _, err := f.Write(bytes.Repeat([]byte{byte(i)}, 64<<10)); err != nil {
				errs[i] = err
				return
			}
			errs[i] = syncFile(f)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := fsyncDir(dir); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, 64<<10)) {
			t.Fatalf("file %d: %d bytes, err %v", i, len(b), err)
		}
	}
	if aioAvailable() && aioOff.Load() {
		t.Fatal("the kernel gives AIO contexts, but fsync fell back to fsync(2)")
	}
	t.Logf("fsync through AIO: %v", !aioOff.Load())
}

// TestSyncFileErrors: a closed file and a bad descriptor are errors, and
// neither turns AIO off.
func TestSyncFileErrors(t *testing.T) {
	syncThenClosed(t)
	if aioOff.Load() {
		t.Skip("AIO fsync is not available here")
	}
	res, err := aio.fsync(1 << 30) // no such descriptor
	if res != aioDone || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("fsync of a bad descriptor: %v, %v; want EBADF", res, err)
	}
	if aioOff.Load() {
		t.Fatal("a bad descriptor turned AIO off")
	}
}

// TestSyncFileWithoutAIO: where AIO is off (an old kernel, a sandbox that
// refuses io_setup), syncFile is fsync(2), errors included.
func TestSyncFileWithoutAIO(t *testing.T) {
	aioOnce.Do(initAIO) // settle whether AIO is on before turning it off
	// With no context at all, any use of AIO would fail the test.
	was, ctx := aioOff.Swap(true), aio
	aio = nil
	t.Cleanup(func() { aioOff.Store(was); aio = ctx })
	syncThenClosed(t)
}

// syncThenClosed syncs a written file, then the same file closed, which
// must be os.ErrClosed.
func syncThenClosed(t *testing.T) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := syncFile(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := syncFile(f); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("sync of a closed file: %v, want os.ErrClosed", err)
	}
}
