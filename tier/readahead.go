package tier

import (
	"context"
	"sync"
)

// RangeInto is implemented by a Tier that can read a range into a buffer
// the caller provides. The Controller reads frames from such a tier into
// buffers it reuses once the block reader is done with them, sparing a
// fresh (and, for a large buffer, freshly faulted-in) allocation per read.
type RangeInto interface {
	// GetRangeInto fills dst with len(dst) bytes starting at off, or
	// fails as GetRange would; dst is not kept.
	GetRangeInto(ctx context.Context, key string, off int64, dst []byte) error
}

func isRangeInto(t Tier) bool {
	_, ok := t.(RangeInto)
	return ok
}

// Read-ahead of a range read. The first frame of a range expected to lie
// within one frame is read alone, as a point read reads it (a range of a few
// messages costs no more); from the second frame on, and from the first in
// a range spanning several, frames are read in chunks that start at
// readAheadFirst bytes and double up to readAheadMax, and the chunk after
// the one being decoded is fetched meanwhile, so that a scan of a cold tier
// waits on the tier once per chunk at most, not once per frame: 2 MiB
// chunks read a cold tier at several times the rate of single frames
// (versitygw: ~430 MB/s in 1 MiB GETs, ~70 MB/s in 128 KiB ones). A range
// holds at most two chunks (and a frame) at a time.
const (
	readAheadFirst = 256 << 10
	readAheadMax   = 2 << 20
)

// readAheadKey is the context key under which ReadMsg and ReadRange hand
// their readAhead to the reads of the block's cached Reader.
type readAheadKey struct{}

// readAhead serves the frame reads of one Get or Range of one block in one
// tier: from chunks read ahead (see readAheadFirst), and, from a RangeInto
// tier, into pooled buffers that close gives back. It is used by one
// goroutine at a time (a Reader reads frame after frame); its fetch ahead
// runs on a goroutine of its own that close cancels and waits for. The
// slices it returns are the tier's or its own buffers, valid until close
// and never modified: the block Reader keeps none past its call.
type readAhead struct {
	t     Tier
	into  RangeInto // t as a RangeInto, or nil
	level int
	key   string
	limit int64 // end of the block's frames (the footer's offset)

	cur    []byte // bytes curOff..curOff+len(cur) of the block
	curOff int64
	reads  int
	chunk  int64
	next   *aheadFetch // the fetch ahead, or nil
	owned  []*[]byte   // pooled buffers to give back on close
}

// aheadFetch is one chunk being fetched ahead.
type aheadFetch struct {
	off, n int64
	cancel context.CancelFunc
	done   sync.WaitGroup
	buf    []byte  // set with err before done
	pooled *[]byte // buf's pooled buffer, or nil
	err    error
}

// newReadAhead returns the readAhead of a read of the frames of block key
// (up to limit) in the tier at level. wide says the read is a range
// spanning several frames: its first read is a chunk already.
func newReadAhead(t Tier, level int, key string, limit int64, wide bool) *readAhead {
	ra := &readAhead{t: t, level: level, key: key, limit: limit, chunk: readAheadFirst}
	ra.into, _ = t.(RangeInto)
	if wide {
		ra.reads = 1
	}
	return ra
}

// readAheadFor returns the readAhead of ctx if it reads key from level.
func readAheadFor(ctx context.Context, level int, key string) *readAhead {
	ra, _ := ctx.Value(readAheadKey{}).(*readAhead)
	if ra == nil || ra.level != level || ra.key != key {
		return nil
	}
	return ra
}

// read returns n bytes at off of the block, as Tier.GetRange does.
func (ra *readAhead) read(ctx context.Context, off, n int64) ([]byte, error) {
	if n <= 0 || off < 0 || off > ra.limit-n {
		return ra.t.GetRange(ctx, ra.key, off, n) // not within the frames: as asked
	}
	curEnd := ra.curOff + int64(len(ra.cur))
	if off >= ra.curOff && off+n <= curEnd {
		return ra.cur[off-ra.curOff : off-ra.curOff+n : off-ra.curOff+n], nil
	}
	if f := ra.next; f != nil {
		// The chunk ahead holds the read, or its start when the read
		// begins at the end of the current chunk.
		joined := off >= ra.curOff && off < curEnd && f.off == curEnd
		if (off >= f.off || joined) && off+n <= f.off+f.n {
			ra.next = nil
			f.done.Wait()
			f.cancel()
			if f.pooled != nil {
				ra.owned = append(ra.owned, f.pooled)
			}
			if f.err != nil {
				return nil, f.err
			}
			var out []byte
			if off >= f.off {
				out = f.buf[off-f.off : off-f.off+n : off-f.off+n]
			} else {
				out = make([]byte, 0, n)
				out = append(append(out, ra.cur[off-ra.curOff:]...), f.buf[:off+n-f.off]...)
			}
			ra.cur, ra.curOff = f.buf, f.off
			ra.fetchAhead(ctx, f.off+f.n)
			return out, nil
		}
		ra.stop()
	}
	ra.reads++
	m := n
	if ra.reads > 1 { // a second read: the range goes on, read a chunk
		m = min(max(n, ra.chunk), ra.limit-off)
	}
	buf, pooled, err := ra.fetch(ctx, off, m)
	if pooled != nil {
		ra.owned = append(ra.owned, pooled)
	}
	if err != nil {
		return nil, err
	}
	ra.cur, ra.curOff = buf, off
	if ra.reads > 1 {
		ra.fetchAhead(ctx, off+m)
	}
	return buf[:n:n], nil
}

// fetch reads n bytes at off from the tier, into a pooled buffer (returned
// too, to give back) when the tier is a RangeInto.
func (ra *readAhead) fetch(ctx context.Context, off, n int64) ([]byte, *[]byte, error) {
	if ra.into == nil {
		b, err := ra.t.GetRange(ctx, ra.key, off, n)
		return b, nil, err
	}
	p := getFrameBuf(n)
	b := (*p)[:n]
	if err := ra.into.GetRangeInto(ctx, ra.key, off, b); err != nil {
		return nil, p, err
	}
	return b, p, nil
}

// fetchAhead starts fetching the chunk at off, growing the chunk size.
func (ra *readAhead) fetchAhead(ctx context.Context, off int64) {
	ra.chunk = min(2*ra.chunk, readAheadMax)
	if off >= ra.limit {
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &aheadFetch{off: off, n: min(ra.chunk, ra.limit-off), cancel: cancel}
	f.done.Go(func() { f.buf, f.pooled, f.err = ra.fetch(fctx, f.off, f.n) })
	ra.next = f
}

// stop cancels the fetch ahead, if any, and waits for it.
func (ra *readAhead) stop() {
	if f := ra.next; f != nil {
		ra.next = nil
		f.cancel()
		f.done.Wait()
		putFrameBuf(f.pooled)
	}
}

// close stops the fetch ahead and gives back the pooled buffers: the slices
// read returned are no longer valid. Idempotent.
func (ra *readAhead) close() {
	ra.stop()
	for _, p := range ra.owned {
		putFrameBuf(p)
	}
	ra.owned, ra.cur = nil, nil
}

// Pooled frame buffers, in classes of capacity frameBufMin<<c, so that
// frames and chunks of about one size share buffers; a read longer than
// the largest class gets a buffer of its own.
const (
	frameBufMin     = 64 << 10
	frameBufClasses = 6 // up to 2 MiB, readAheadMax
)

var frameBufs [frameBufClasses]sync.Pool // class c: *[]byte of cap frameBufMin<<c

// frameBufClass returns the class of the buffers that hold n bytes, or
// frameBufClasses when none does.
func frameBufClass(n int64) int {
	c := 0
	for c < frameBufClasses && int64(frameBufMin)<<c < n {
		c++
	}
	return c
}

// getFrameBuf returns a buffer of capacity n or more.
func getFrameBuf(n int64) *[]byte {
	c := frameBufClass(n)
	if c == frameBufClasses {
		b := make([]byte, n)
		return &b
	}
	if p, ok := frameBufs[c].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, frameBufMin<<c)
	return &b
}

// putFrameBuf gives p (nil: nothing) back to its class.
func putFrameBuf(p *[]byte) {
	if p == nil {
		return
	}
	if c := frameBufClass(int64(cap(*p))); c < frameBufClasses && cap(*p) == frameBufMin<<c {
		frameBufs[c].Put(p)
	}
}
