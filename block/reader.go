package block

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
	"sync"
)

// ReadRangeFunc reads n bytes at offset off of a block. It returns exactly n
// bytes or an error; the reader does not modify the returned slice and does
// not keep it past the call that asked for it, except that OpenBytes keeps
// the whole block.
type ReadRangeFunc func(ctx context.Context, off, n int64) ([]byte, error)

// tailSize is how much of the end of a block Open reads at once: enough for
// the trailer and the footer of a typical block, so that opening a block in
// an object store takes one ranged read. The footer of an 8 MiB block of
// 250 to 400-byte messages takes 80 to 140 KiB (about 4.3 bytes a
// message, mostly nanosecond timestamps); reading 256 KiB costs an object
// store about what 64 KiB does, and saves the second round trip.
const tailSize = 256 << 10

// Reader reads messages from a block. It is immutable after Open and safe
// for concurrent use; it keeps the decoded footer (12 bytes per message,
// 20 in a block with gaps), a copy of the subject index's encoded bytes (no
// more than FooterSize) and the ReadRangeFunc, and reads one frame per Get
// and frame by frame in Range. Messages it returns never share memory with buffers the
// package reuses or with the bytes the ReadRangeFunc returned: callers may
// keep and modify them.
type Reader struct {
	read      ReadRangeFunc
	f         *footer
	footerLen int
	cfg       openConfig
	// trusted is set by OpenStable once every frame passed its checksum.
	trusted bool
}

// openConfig holds the limits of a reader; tests lower them.
type openConfig struct {
	maxRaw  int  // bound on a frame's raw length
	skipCRC bool // do not verify checksums (fuzzing the decoder beyond them)
}

var defaultConfig = openConfig{maxRaw: MaxMsgSize}

// Open reads the trailer and footer of the block of size bytes that read
// reads, checks them, and returns a reader for it. It reads the last 256 KiB
// (or the whole block if smaller) in one call, and reads again only the part
// of a larger footer that this missed. The header is checked when the block
// fits in that read. It returns an error wrapping ErrCorrupt if the block is
// not valid, and the read's error (wrapped) if a read fails.
func Open(ctx context.Context, size int64, read ReadRangeFunc) (*Reader, error) {
	return open(ctx, size, read, defaultConfig)
}

// OpenStable is Open for a block whose bytes cannot change while the
// reader is in use, such as a block held in memory that read returns
// without copying. It reads every frame once and checks its checksum, then
// trusts the frames: Get and Range check none of them again, which spares
// a read of one message the checksum of its whole frame. A block read from
// a file or over the network, which may change or rot between reads, is
// opened with Open, which checks a frame at every read.
func OpenStable(ctx context.Context, size int64, read ReadRangeFunc) (*Reader, error) {
	r, err := open(ctx, size, read, defaultConfig)
	if err != nil {
		return nil, err
	}
	for _, fr := range r.f.frames {
		stored, err := readAt(ctx, read, fr.off, fr.stored)
		if err != nil {
			return nil, err
		}
		if got := crc32.Checksum(stored, castagnoli); got != fr.crc {
			return nil, corruptf(fr.off, "frame checksum %08x, footer says %08x", got, fr.crc)
		}
	}
	r.trusted = true
	return r, nil
}

// Verify checks every part of the block b that a reader checks: its
// header, trailer and footer, and the checksum of every frame. It returns
// an error wrapping ErrCorrupt if any fails.
func Verify(b []byte) error {
	if err := parseHeader(b); err != nil {
		return err
	}
	_, err := OpenStable(context.Background(), int64(len(b)), func(_ context.Context, off, n int64) ([]byte, error) {
		return b[off : off+n], nil // open and the frame checks stay within len(b)
	})
	return err
}

// OpenBytes returns a reader for the block b, which the reader keeps: b
// must not be modified while the reader is in use.
func OpenBytes(b []byte) (*Reader, error) {
	return openBytes(b, defaultConfig)
}

func openBytes(b []byte, cfg openConfig) (*Reader, error) {
	r, err := open(context.Background(), int64(len(b)), func(_ context.Context, off, n int64) ([]byte, error) {
		return b[off : off+n], nil // open and the frame readers stay within len(b)
	}, cfg)
	if err != nil {
		return nil, err
	}
	if err := parseHeader(b); err != nil {
		return nil, err
	}
	return r, nil
}

func open(ctx context.Context, size int64, read ReadRangeFunc, cfg openConfig) (*Reader, error) {
	if size < headerSize+trailerSize {
		return nil, corruptf(0, "block of %d bytes is shorter than its header and trailer", size)
	}
	tail := min(size, tailSize)
	buf, err := readAt(ctx, read, size-tail, tail)
	if err != nil {
		return nil, err
	}
	tr, err := parseTrailer(buf[tail-trailerSize:], size)
	if err != nil {
		return nil, err
	}
	if tail == size {
		if err := parseHeader(buf); err != nil {
			return nil, err
		}
	}
	var fb []byte
	if have := tail - trailerSize; int64(tr.footerLen) <= have {
		fb = buf[have-int64(tr.footerLen) : have]
	} else {
		// The tail holds the end of the footer; read its beginning.
		head, err := readAt(ctx, read, tr.footerOff, size-tail-tr.footerOff)
		if err != nil {
			return nil, err
		}
		fb = make([]byte, 0, tr.footerLen)
		fb = append(append(fb, head...), buf[:have]...)
	}
	if got := crc32.Checksum(fb, castagnoli); got != tr.crc && !cfg.skipCRC {
		return nil, corruptf(tr.footerOff, "footer checksum %08x, trailer says %08x", got, tr.crc)
	}
	f, err := parseFooter(fb, tr.footerOff, cfg.maxRaw)
	if err != nil {
		return nil, err
	}
	f.meta.Size = size
	f.meta.Checksum = tr.crc
	f.meta.Version = FormatVersion
	return &Reader{read: read, f: f, footerLen: tr.footerLen, cfg: cfg}, nil
}

// readAt calls read and checks it returned n bytes.
func readAt(ctx context.Context, read ReadRangeFunc, off, n int64) ([]byte, error) {
	b, err := read(ctx, off, n)
	if err != nil {
		return nil, fmt.Errorf("block: read %d bytes at offset %d: %w", n, off, err)
	}
	if int64(len(b)) != n {
		return nil, corruptf(off, "read of %d bytes returned %d", n, len(b))
	}
	return b, nil
}

// Meta returns the block's summary.
func (r *Reader) Meta() Meta { return r.f.meta }

// FooterSize returns the length of the footer and trailer: what Open reads
// beyond the frames, and what a cached Reader saves on each later read.
func (r *Reader) FooterSize() int64 { return int64(r.footerLen + trailerSize) }

// index returns the position of seq in the block.
func (r *Reader) index(seq uint64) (int, bool) { return r.f.index(seq) }

// Has reports whether the block holds seq.
func (r *Reader) Has(seq uint64) bool {
	_, ok := r.index(seq)
	return ok
}

// SeqForTime returns the sequence of the first message whose timestamp is
// at or after t (unix nanoseconds), and false if there is none.
func (r *Reader) SeqForTime(t int64) (uint64, bool) {
	f := r.f
	var i int
	if f.sorted {
		i = sort.Search(len(f.times), func(i int) bool { return f.times[i] >= t })
	} else {
		for i < len(f.times) && f.times[i] < t {
			i++
		}
	}
	if i == len(f.times) {
		return 0, false
	}
	return f.seqAt(i), true
}

// frameOf returns the index of the frame holding the i-th message.
func (r *Reader) frameOf(i int) int {
	fs := r.f.frames
	return sort.Search(len(fs), func(j int) bool { return fs[j].first+fs[j].count > i })
}

// framePool holds buffers for frames Get decodes and does not hand out.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled bounds the buffers framePool keeps.
const maxPooled = 4 << 20

// Get returns the message with sequence seq, reading and decoding the one
// frame that holds it. It returns an error wrapping ErrNotFound if the block
// does not hold seq, and one wrapping ErrCorrupt if the frame is not valid.
// The message's Header and Data share one new allocation.
func (r *Reader) Get(ctx context.Context, seq uint64) (Msg, error) {
	i, ok := r.index(seq)
	if !ok {
		return Msg{}, fmt.Errorf("%w: seq %d in block %s %d-%d", ErrNotFound, seq, r.f.meta.Stream, r.f.meta.FirstSeq, r.f.meta.LastSeq)
	}
	if err := ctx.Err(); err != nil {
		return Msg{}, err
	}
	fi := r.frameOf(i)
	fr := &r.f.frames[fi]
	bp := framePool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooled {
			framePool.Put(bp)
		}
	}()
	stored, err := r.readFrame(ctx, fi)
	if err != nil {
		return Msg{}, err
	}
	raw := stored // a frame stored as is is read in place
	if !r.storedRaw(fr) {
		if raw, err = decompress(r.f.meta.Codec, *bp, stored, fr.raw, fr.off); err != nil {
			return Msg{}, err
		}
		*bp = raw[:0]
	}
	m, err := r.record(raw, fr, i, nil)
	if err != nil {
		return Msg{}, err
	}
	// raw goes back to the pool, or is the bytes read returned: give the
	// message its own copy.
	buf := make([]byte, len(m.Header)+len(m.Data))
	h := copy(buf, m.Header)
	copy(buf[h:], m.Data)
	m.Header, m.Data = nilIfEmpty(buf[:h:h]), nilIfEmpty(buf[h:])
	return m, nil
}

// Range calls fn with each message whose sequence is in [from, to], in
// order; to == 0 means to the end of the block. It reads and decodes one
// frame at a time, and checks ctx between frames. It stops at the first
// error fn returns and returns that error as is. The messages of one frame
// share that frame's newly allocated buffer: keeping one keeps the frame
// (about Options.FrameSize bytes) in memory.
func (r *Reader) Range(ctx context.Context, from, to uint64, fn func(Msg) error) error {
	f := r.f
	if to == 0 || to > f.meta.LastSeq {
		to = f.meta.LastSeq
	}
	from = max(from, f.meta.FirstSeq)
	if from > to {
		return nil
	}
	start := int(from - f.meta.FirstSeq)
	if f.seqs != nil {
		start = sort.Search(len(f.seqs), func(i int) bool { return f.seqs[i] >= from })
	}
	subjects := make(map[string]string)
	for fi := r.frameOf(start); fi < len(f.frames); fi++ {
		fr := &f.frames[fi]
		if f.seqAt(fr.first) > to {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := r.loadFrame(ctx, fi, nil)
		if err != nil {
			return err
		}
		for i := max(start, fr.first); i < fr.first+fr.count; i++ {
			if f.seqAt(i) > to {
				return nil
			}
			m, err := r.record(raw, fr, i, subjects)
			if err != nil {
				return err
			}
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadFrame reads frame fi, checks its checksum (unless the block is
// trusted) and decodes it into dst (reused if large enough), or a copy of
// it when it is stored as is.
func (r *Reader) loadFrame(ctx context.Context, fi int, dst []byte) ([]byte, error) {
	stored, err := r.readFrame(ctx, fi)
	if err != nil {
		return nil, err
	}
	fr := &r.f.frames[fi]
	c := r.f.meta.Codec
	if r.storedRaw(fr) {
		c = CodecNone
	}
	return decompress(c, dst, stored, fr.raw, fr.off)
}

// readFrame reads the stored bytes of frame fi and checks their checksum
// (unless the block is trusted).
func (r *Reader) readFrame(ctx context.Context, fi int) ([]byte, error) {
	fr := &r.f.frames[fi]
	stored, err := readAt(ctx, r.read, fr.off, fr.stored)
	if err != nil {
		return nil, err
	}
	if !r.trusted && !r.cfg.skipCRC {
		if got := crc32.Checksum(stored, castagnoli); got != fr.crc {
			return nil, corruptf(fr.off, "frame checksum %08x, footer says %08x", got, fr.crc)
		}
	}
	return stored, nil
}

// storedRaw reports whether frame fr is stored as is (flagRawFrames).
func (r *Reader) storedRaw(fr *frame) bool {
	return r.f.rawFrames && fr.stored == int64(fr.raw)
}

// maxInterned bounds the subjects Range keeps to share among messages.
const maxInterned = 1024

// record decodes the i-th message from raw, the decoded frame fr. Header
// and Data alias raw (capped, so appending to one does not overwrite the
// other). With subjects non-nil, equal subjects share one string.
func (r *Reader) record(raw []byte, fr *frame, i int, subjects map[string]string) (Msg, error) {
	f := r.f
	start := int(f.offs[i])
	end := fr.raw
	if i+1 < fr.first+fr.count {
		end = int(f.offs[i+1])
	}
	p := raw[start:end]
	sl, n1 := binary.Uvarint(p)
	if n1 <= 0 {
		return Msg{}, corruptf(fr.off, "seq %d: bad subject length at raw offset %d", f.seqAt(i), start)
	}
	hl, n2 := binary.Uvarint(p[n1:])
	if n2 <= 0 {
		return Msg{}, corruptf(fr.off, "seq %d: bad header length at raw offset %d", f.seqAt(i), start+n1)
	}
	p = p[n1+n2:]
	if sl > uint64(len(p)) || hl > uint64(len(p))-sl {
		return Msg{}, corruptf(fr.off, "seq %d: subject and header of %d+%d bytes in a record of %d at raw offset %d", f.seqAt(i), sl, hl, len(p), start)
	}
	sb, hb, db := p[:sl], p[sl:sl+hl:sl+hl], p[sl+hl:len(p):len(p)]
	m := Msg{Seq: f.seqAt(i), Header: nilIfEmpty(hb), Data: nilIfEmpty(db), Time: f.times[i]}
	if s, ok := subjects[string(sb)]; ok {
		m.Subject = s
	} else {
		m.Subject = string(sb)
		if subjects != nil && len(subjects) < maxInterned {
			subjects[m.Subject] = m.Subject
		}
	}
	return m, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
