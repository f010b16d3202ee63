//go:build linux

package tier

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux, syncFile waits for an fsync through the kernel's asynchronous
// I/O (IOCB_CMD_FSYNC, Linux 4.18 and later) rather than in fsync(2).
//
// A goroutine blocked in a system call keeps its P, one of the GOMAXPROCS
// slots that run Go code, until the runtime's monitor notices and hands
// the P to another thread: 20µs to 10ms later (golang/go#29734). An fsync
// waits a millisecond or so on the disk, and the ingest makes four a block
// (the file tier's copy and the dir:// blob copy, each file and then its
// directory), so on a two-CPU machine each of them took one of the two Ps
// from the server and the ingest for about its whole length. Through AIO
// the fsync runs on a kernel worker: the goroutine waits on a channel, and
// one reaper goroutine per process waits on an eventfd in the runtime's
// poller, neither holding a P. Archiving a backlog with the file and blob
// tiers on one disk went 3-14% faster (alternating drains, 6 of each).
//
// The File store's direct writes (see writeDurable) go through the same
// queue, for the same reason.
//
// The fsync is the same one, vfs_fsync of the file, as durable as
// fsync(2). Where AIO cannot fsync (a kernel before 4.18, a seccomp profile
// that refuses io_setup, a file system without it) the first refusal turns
// it off for the process and fsync(2) is used from then on, as on other
// systems.

const (
	iocbCmdPwrite = 1      // IOCB_CMD_PWRITE
	iocbCmdFsync  = 2      // IOCB_CMD_FSYNC
	iocbFlagResfd = 1 << 0 // IOCB_FLAG_RESFD: count the completion on an eventfd
	// aioDepth bounds the requests in flight; it is the size of the AIO
	// context's completion ring.
	aioDepth = 64
)

// iocb is struct iocb of linux/aio_abi.h. aio_key and aio_rw_flags trade
// places on big-endian machines; both are zero here.
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   int32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event of linux/aio_abi.h.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

// aioQueue submits fsyncs and direct writes (see writeDurable) to one AIO
// context and hands each waiting goroutine its result; the kernel counts
// completions on an eventfd.
type aioQueue struct {
	ctx   uintptr // aio_context_t
	efd   int
	ev    *os.File // efd, read through the runtime poller
	slots chan struct{}

	mu   sync.Mutex
	next uint64
	wait map[uint64]pending
	dead bool // the reaper has stopped
}

// pending is a request in flight: where its result goes, and the memory a
// write reads from. The kernel reads that memory after io_submit returns, while
// the goroutine that submitted it waits parked; holding it here keeps it
// alive, and makes the compiler place every buffer passed to a write on the
// heap, where nothing moves it (a parked goroutine's stack may be moved).
type pending struct {
	done chan int64
	buf  []byte
}

var (
	aioOnce sync.Once
	aio     *aioQueue
	aioOff  atomic.Bool // AIO cannot fsync here: fsync(2) and pwrite(2) from now on
)

// syncFile commits f's data and metadata to stable storage, as f.Sync does.
func syncFile(f *os.File) error {
	aioOnce.Do(initAIO)
	if aioOff.Load() {
		return f.Sync()
	}
	var res aioResult
	var serr error
	// The descriptor stays open until Control returns. Either fails only
	// for a closed file, which f.Sync reports as os.ErrClosed.
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Sync()
	}
	if err := rc.Control(func(fd uintptr) { res, serr = aio.fsync(fd) }); err != nil {
		return f.Sync()
	}
	switch res {
	case aioUnsupported:
		aioOff.Store(true)
		return f.Sync()
	case aioBusy:
		return f.Sync()
	}
	if errors.Is(serr, unix.EINVAL) {
		// Refused on completion rather than at submission: fsync(2)
		// says what it makes of the file.
		aioOff.Store(true)
		return f.Sync()
	}
	if serr != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: serr}
	}
	return nil
}

// aioResult says how an AIO request went, besides its error.
type aioResult int

const (
	aioDone        aioResult = iota // completed, with the error returned
	aioUnsupported                  // AIO cannot do this request here
	aioBusy                         // out of AIO resources for now
)

// initAIO makes the process's AIO context, or turns AIO off.
func initAIO() {
	s, err := newAIOQueue()
	if err != nil {
		aioOff.Store(true)
		return
	}
	aio = s
}

func newAIOQueue() (*aioQueue, error) {
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, aioDepth, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil, e
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		return nil, err
	}
	s := &aioQueue{
		ctx: ctx, efd: efd, ev: os.NewFile(uintptr(efd), "aio-eventfd"),
		slots: make(chan struct{}, aioDepth), wait: make(map[uint64]pending),
	}
	go s.reap()
	return s, nil
}

// fsync submits an fsync of fd and waits for it to complete.
func (s *aioQueue) fsync(fd uintptr) (aioResult, error) {
	res, _, err := s.do(iocb{opcode: iocbCmdFsync, fildes: uint32(fd)}, nil)
	return res, err
}

// pwrite submits a write of p to fd at off and waits for it to complete. It
// returns the bytes written.
func (s *aioQueue) pwrite(fd uintptr, p []byte, off int64) (aioResult, int, error) {
	if len(p) == 0 {
		return aioDone, 0, nil
	}
	cb := iocb{opcode: iocbCmdPwrite, fildes: uint32(fd),
		buf: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p)))), nbytes: uint64(len(p)), offset: off}
	res, n, err := s.do(cb, p)
	return res, int(n), err
}

// do submits one request and waits for it to complete. buf is the memory a
// write reads from, held until the request completes. n is the kernel's
// result: the bytes a write moved, 0 for an fsync.
func (s *aioQueue) do(cb iocb, buf []byte) (res aioResult, n int64, err error) {
	s.slots <- struct{}{}
	defer func() { <-s.slots }()
	done := make(chan int64, 1)
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return aioUnsupported, 0, nil
	}
	s.next++
	id := s.next
	s.wait[id] = pending{done: done, buf: buf}
	s.mu.Unlock()
	cb.data, cb.flags, cb.resfd = id, iocbFlagResfd, uint32(s.efd)
	cbs := []*iocb{&cb}
	var e syscall.Errno
	for {
		_, _, e = unix.Syscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		if e != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(cbs)
	if e != 0 {
		s.mu.Lock()
		delete(s.wait, id)
		s.mu.Unlock()
		switch e {
		case unix.EINVAL, unix.ENOSYS, unix.EPERM, unix.EOPNOTSUPP:
			// No AIO for this request in this kernel (no fsync
			// before 4.18), for this file, or in this sandbox.
			return aioUnsupported, 0, e
		case unix.EAGAIN:
			return aioBusy, 0, e
		}
		return aioDone, 0, e
	}
	r := <-done
	if r < 0 {
		return aioDone, 0, syscall.Errno(-r)
	}
	return aioDone, r, nil
}

// reap waits on the eventfd and hands each completed request its result. It
// runs for the life of the process.
func (s *aioQueue) reap() {
	var count [8]byte
	var events [aioDepth]ioEvent
	for {
		if _, err := io.ReadFull(s.ev, count[:]); err != nil {
			s.abort(err)
			return
		}
		// The count may run ahead of the ring or behind it; take
		// whatever has completed.
		for {
			var ts unix.Timespec // no waiting
			n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, s.ctx, 0, aioDepth,
				uintptr(unsafe.Pointer(&events[0])), uintptr(unsafe.Pointer(&ts)), 0)
			if e == unix.EINTR {
				continue
			}
			if e != 0 {
				s.abort(e)
				return
			}
			if n == 0 {
				break
			}
			s.mu.Lock()
			for _, ev := range events[:n] {
				if p, ok := s.wait[ev.data]; ok {
					delete(s.wait, ev.data)
					p.done <- ev.res
				}
			}
			s.mu.Unlock()
		}
	}
}

// abort fails every request in flight with err and turns AIO off. The
// eventfd and the ring do not fail while the process runs; this is only
// so that nothing waits forever if they ever do.
func (s *aioQueue) abort(err error) {
	aioOff.Store(true)
	errno := unix.EIO
	if e, ok := errors.AsType[syscall.Errno](err); ok {
		errno = e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	for id, p := range s.wait {
		delete(s.wait, id)
		p.done <- -int64(errno)
	}
}
