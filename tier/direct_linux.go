//go:build linux

package tier

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a File store made with WriteAround (the dir:// blob tier's)
// writes each block around the page cache (O_DIRECT): the disk reads the
// block from the caller's buffer, in place.
//
// A buffered write copies every byte into the page cache and leaves the
// pages there, dirty, for the fsync to write back. Archiving 50k × 4 KiB
// messages to the file and dir:// blob tiers on one disk, the kernel spent
// about 170 ms of CPU a drain in those writes (copy_folio_from_iter_atomic
// and the writeback after it, perf over 6 drains), as much as all the rest
// of the tiers' work; written around the cache, the writes of both tiers
// cost next to nothing. The blob tier's copy is the one worth writing so:
// reads fall through the memory and file tiers first, so its pages would
// only sit in the cache. The file tier's copy is the one read once a block
// has left the memory tier, and cached pages serve those reads: written
// around the cache too, its point reads in nts bench went to the disk, p50
// 417 µs (4.0× the no-op round trip) against 58 µs (2.0×) through it. So
// the file tier writes through the page cache, and the blob tier's copy
// alone around it: that took the same drain from 0.73× to 0.76× the rate
// of a consumer acking nothing (medians of 10 interleaved drains; both
// copies around the cache, 0.79×).
//
// Direct I/O moves whole aligned pages, so a block is written in two parts:
// the file is first given its full length, the tail that does not fill a
// page goes through the page cache, and then the pages before it are
// written direct, from the block itself, through AIO (aioQueue) so that
// waiting on the disk holds no P. Because the file already has its length,
// the direct write only fills it, and the file system can complete it after
// io_submit returns: on an ext4 disk a 1 MiB direct write that extended a
// file spent 1.8-1.9 ms of its 2.2 ms inside io_submit, holding a P, and
// one into a file already that long 0.4-0.6 ms of 1.9. The fsync that
// follows is unchanged; it commits the tail and the file's metadata.
//
// Where the direct write cannot be used the block is written through the
// page cache: a block whose memory is not page-aligned (Go places
// allocations of 32 KiB and more at the start of a page, so nearly every
// block), one shorter than a page, or a file system that refuses O_DIRECT
// (the first refusal turns it off for the store).

// directAlign is the alignment, in memory and in the file, of a direct
// write: the page size, a multiple of every common device's logical block.
const directAlign = 4096

// writeDurable writes blk to tmp, a file just created and empty, and commits
// it to stable storage.
func (f *File) writeDurable(tmp *os.File, blk []byte) error {
	head := len(blk) &^ (directAlign - 1)
	if head == 0 || !f.around || f.buffered.Load() || uintptr(unsafe.Pointer(unsafe.SliceData(blk)))%directAlign != 0 {
		return writeBuffered(tmp, blk)
	}
	if err := tmp.Truncate(int64(len(blk))); err != nil {
		return err
	}
	if _, err := tmp.WriteAt(blk[head:], int64(head)); err != nil {
		return err
	}
	rc, err := tmp.SyscallConn()
	if err != nil {
		return err
	}
	var direct bool
	var werr error
	if err := rc.Control(func(fd uintptr) { direct, werr = writeDirect(fd, blk[:head]) }); err != nil {
		return err
	}
	if werr != nil {
		return &os.PathError{Op: "write", Path: tmp.Name(), Err: werr}
	}
	if !direct {
		f.buffered.Store(true)
		if _, err := tmp.WriteAt(blk[:head], 0); err != nil {
			return err
		}
	}
	return syncFile(tmp)
}

// writeDirect writes p, whose start and length are multiples of
// directAlign, to the start of fd with O_DIRECT. It reports false, and
// leaves fd as it found it, where the file system refuses direct I/O.
func writeDirect(fd uintptr, p []byte) (bool, error) {
	fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return false, fmt.Errorf("fcntl: %w", err)
	}
	if _, err := unix.FcntlInt(fd, unix.F_SETFL, fl|unix.O_DIRECT); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, nil // no O_DIRECT on this file system
		}
		return false, fmt.Errorf("fcntl: %w", err)
	}
	n, err := pwriteAIO(fd, p, 0)
	if errors.Is(err, unix.EINVAL) {
		// Refused at the write: the device wants a larger alignment,
		// or the file system takes the flag but not the I/O.
		if _, err := unix.FcntlInt(fd, unix.F_SETFL, fl); err != nil {
			return false, fmt.Errorf("fcntl: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if n != len(p) {
		return true, io.ErrShortWrite
	}
	return true, nil
}

// pwriteAIO writes p to fd at off through AIO, or with pwrite(2) where AIO
// is off or cannot take the write.
func pwriteAIO(fd uintptr, p []byte, off int64) (int, error) {
	aioOnce.Do(initAIO)
	if !aioOff.Load() {
		if res, n, err := aio.pwrite(fd, p, off); res == aioDone {
			return n, err
		}
	}
	return unix.Pwrite(int(fd), p, off)
}
