package block

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"
)

// Defaults and bounds of Options.
const (
	// DefaultTargetSize is the raw size at which a builder reports Full.
	DefaultTargetSize = 8 << 20
	// DefaultFrameSize is the raw size of a frame: a read of one message
	// decodes one frame, a larger frame compresses better. At 32 KiB, S2
	// stores JSON logs in 0.28 of their raw bytes (0.25 at 128 KiB) and a
	// read of one message decodes a quarter as much.
	//
	// S2 encodes an input of 16 KiB or more with a 64 KiB hash table that
	// it clears at every call, about 1.6 µs: 40% of the 4 µs it takes to
	// encode a frame of seven 4 KiB messages. Under 16 KiB its table is a
	// quarter of that (16383 bytes encode in 1.5-1.9 µs, 16384 in
	// 3.1-3.5). Frames are not cut under 16 KiB for it, nor encoded as
	// such pieces joined with s2.ConcatBlocks: each piece loses the matches
	// into the one before, and messages that repeat 4 KiB apart then
	// stored twice the bytes.
	DefaultFrameSize = 32 << 10
	// MaxTargetSize bounds Options.TargetSize.
	MaxTargetSize = 1 << 30
)

// Msg is one stream message.
type Msg struct {
	// Seq is the stream sequence, >= 1.
	Seq uint64
	// Subject is the subject the message was published on.
	Subject string
	// Header is the raw NATS header block ("NATS/1.0\r\n...\r\n\r\n")
	// exactly as published, or nil. A reader returns nil for an empty header.
	Header []byte
	// Data is the payload. A reader returns nil for an empty payload.
	Data []byte
	// Time is the time JetStream stored the message, in unix nanoseconds.
	Time int64
	// Mark is a tag of the caller's choosing, kept in the subject index
	// only (Options.Subjects) and returned there in Entry.Mark; a block
	// without a subject index drops it. Reader.Get and Reader.Range leave
	// it 0: look the message up with Reader.Subject to learn it.
	Mark uint8
}

// Options configure a Builder.
type Options struct {
	// Stream names the stream the messages come from; 1 to 255 bytes.
	Stream string
	// Codec compresses each frame; the zero value is CodecNone, and
	// ParseCodec("") gives the default, CodecS2.
	Codec Codec
	// TargetSize is the raw size (see Builder.RawSize) at which the builder
	// reports Full; 0 means DefaultTargetSize.
	TargetSize int64
	// FrameSize is the raw size of a frame: a message that would take a
	// frame past it starts a new frame, and a message larger than it gets a
	// frame of its own. 0 means DefaultFrameSize.
	FrameSize int
	// Subjects adds a subject index to the block (each distinct subject
	// with its messages' sequences and marks; see Reader.Subject) and a
	// filter over its subjects to the Meta that Seal returns (Meta.Filter).
	Subjects bool
	// MaxFilterSize bounds Meta.Filter, in bytes (a filter takes at least
	// 10); 0 means DefaultMaxFilterSize. An index entry holds the filter, so
	// it must fit a NATS message with room to spare.
	MaxFilterSize int
}

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Stream == "" || len(o.Stream) > maxStreamLen:
		return o, fmt.Errorf("%w: stream name must be 1 to %d bytes, got %d", ErrInvalidOption, maxStreamLen, len(o.Stream))
	case !o.Codec.valid():
		return o, fmt.Errorf("%w: unknown codec %d", ErrInvalidOption, o.Codec)
	case o.TargetSize < 0 || o.TargetSize > MaxTargetSize:
		return o, fmt.Errorf("%w: target size %d out of range [0, %d]", ErrInvalidOption, o.TargetSize, MaxTargetSize)
	case o.FrameSize < 0 || o.FrameSize > MaxMsgSize:
		return o, fmt.Errorf("%w: frame size %d out of range [0, %d]", ErrInvalidOption, o.FrameSize, MaxMsgSize)
	case o.MaxFilterSize < 0 || o.MaxFilterSize > MaxFilterSize:
		return o, fmt.Errorf("%w: max filter size %d out of range [0, %d]", ErrInvalidOption, o.MaxFilterSize, MaxFilterSize)
	}
	if o.TargetSize == 0 {
		o.TargetSize = DefaultTargetSize
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.MaxFilterSize == 0 {
		o.MaxFilterSize = DefaultMaxFilterSize
	}
	return o, nil
}

// Builder accumulates messages and seals them into a block. Frames are
// compressed as they fill, so a builder holds about the block's stored size
// plus one raw frame. A Builder is not safe for concurrent use. Its small
// buffers are reused from one block to the next; the body that holds the
// compressed frames becomes the block Seal returns, which belongs to the
// caller, so that a sealed block is not copied and an idle builder holds
// no block-sized buffer.
//
// Frames are compressed on the caller's goroutine. Handing each to a
// goroutine of the builder's own, so that Add only copies, made an ingest
// no faster: 10 interleaved drains of 50k messages of 4 KiB took a median
// of 489 ms against 467 inline, both cores being busy throughout.
type Builder struct {
	opts Options

	body    []byte   // header and the compressed frames closed so far; nil until a frame closes
	last    int      // size of the last block sealed, for the next body's capacity
	raw     []byte   // records of the open frame
	frames  []frame  // closed frames
	open    int      // index of the open frame's first message
	seqs    []uint64 // per message, in order
	recLens []uint32
	times   []int64
	rawSize int64
	minTime int64
	maxTime int64
	footer  []byte // scratch for Seal
	subj    subjectBuilder
	subjIdx []byte // scratch for Seal: the encoded subject index
}

// NewBuilder returns an empty builder for blocks of opts.Stream. It returns
// an error wrapping ErrInvalidOption for options out of range.
func NewBuilder(opts Options) (*Builder, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Builder{opts: o}
	b.Reset()
	return b, nil
}

// Options returns the builder's options with defaults filled in.
func (b *Builder) Options() Options { return b.opts }

// Len returns the number of messages held.
func (b *Builder) Len() int { return len(b.seqs) }

// RawSize returns the raw size of the messages held: the length their
// records take in uncompressed frames (subject, header and data, plus two
// length varints each). It is what Options.TargetSize is compared with and
// what Meta.RawSize of the sealed block will be.
func (b *Builder) RawSize() int64 { return b.rawSize }

// Full reports whether the builder holds Options.TargetSize raw bytes or
// MaxMsgs messages, or distinct subjects whose names take a quarter of the
// footer's bound, and should be sealed.
func (b *Builder) Full() bool {
	return b.rawSize >= b.opts.TargetSize || len(b.seqs) >= MaxMsgs || b.subj.bytes >= maxFooterSize/4
}

// FirstTime returns the earliest timestamp of the messages held (what
// Meta.FirstTime of the sealed block will be), or 0.
func (b *Builder) FirstTime() int64 { return b.minTime }

// FirstSeq returns the sequence of the first message held, or 0.
func (b *Builder) FirstSeq() uint64 {
	if len(b.seqs) == 0 {
		return 0
	}
	return b.seqs[0]
}

// LastSeq returns the sequence of the last message held, or 0.
func (b *Builder) LastSeq() uint64 {
	if len(b.seqs) == 0 {
		return 0
	}
	return b.seqs[len(b.seqs)-1]
}

// Add appends m to the block, copying its subject, header and data. It
// returns an error wrapping ErrOrder if m.Seq is 0 or not above LastSeq, and
// one wrapping ErrTooLarge if m's record exceeds MaxMsgSize or the builder
// already holds MaxMsgs messages. On error the builder is unchanged.
func (b *Builder) Add(m Msg) error {
	if last := b.LastSeq(); m.Seq <= last {
		return fmt.Errorf("%w: seq %d after %d", ErrOrder, m.Seq, last)
	}
	if len(b.seqs) >= MaxMsgs {
		return fmt.Errorf("%w: block holds %d messages", ErrTooLarge, MaxMsgs)
	}
	rec := uvarintLen(uint64(len(m.Subject))) + uvarintLen(uint64(len(m.Header))) +
		len(m.Subject) + len(m.Header) + len(m.Data)
	if rec > MaxMsgSize {
		return fmt.Errorf("%w: message %d takes %d bytes, limit %d", ErrTooLarge, m.Seq, rec, MaxMsgSize)
	}
	if len(b.raw) > 0 && len(b.raw)+rec > b.opts.FrameSize {
		if err := b.closeFrame(); err != nil {
			return err
		}
	}
	b.raw = grow(b.raw, rec)
	b.raw = binary.AppendUvarint(b.raw, uint64(len(m.Subject)))
	b.raw = binary.AppendUvarint(b.raw, uint64(len(m.Header)))
	b.raw = append(b.raw, m.Subject...)
	b.raw = append(b.raw, m.Header...)
	b.raw = append(b.raw, m.Data...)
	if len(b.seqs) == 0 {
		b.minTime, b.maxTime = m.Time, m.Time
	}
	b.minTime, b.maxTime = min(b.minTime, m.Time), max(b.maxTime, m.Time)
	b.seqs = append(b.seqs, m.Seq)
	b.recLens = append(b.recLens, uint32(rec))
	b.times = append(b.times, m.Time)
	b.rawSize += int64(rec)
	if b.opts.Subjects {
		b.subj.add(m.Subject, m.Mark)
	}
	return nil
}

// closeFrame compresses the open frame onto the body. On error the builder
// is unchanged.
func (b *Builder) closeFrame() error {
	if b.body == nil {
		b.body = b.newBody()
	}
	if room := frameRoom(b.opts.Codec, len(b.raw)); cap(b.body)-len(b.body) < room {
		b.body = b.growBody(room)
	}
	off := len(b.body)
	body, err := compress(b.opts.Codec, b.body, b.raw)
	if err != nil {
		return err
	}
	b.body = body
	stored := b.body[off:]
	if b.opts.Codec != CodecNone && len(stored) >= len(b.raw)-len(b.raw)/rawFrameSaving {
		// The codec saves too little: the frame is stored as is, and a
		// read of it decodes nothing (flagRawFrames).
		b.body = append(b.body[:off], b.raw...)
		stored = b.body[off:]
	}
	b.frames = append(b.frames, frame{
		off:      int64(off),
		stored:   int64(len(stored)),
		raw:      len(b.raw),
		firstSeq: b.seqs[b.open],
		count:    len(b.seqs) - b.open,
		first:    b.open,
		crc:      crc32.Checksum(stored, castagnoli),
	})
	b.open = len(b.seqs)
	if cap(b.raw) > 4*b.opts.FrameSize {
		b.raw = nil // do not keep the buffer of an outsized message
	} else {
		b.raw = b.raw[:0]
	}
	return nil
}

// Seal encodes the messages held into a block and returns it with its
// summary, then resets the builder for the next block. The returned slice
// is newly allocated and owned by the caller. It returns an error wrapping
// ErrEmpty if the builder holds no message; on error the builder keeps its
// messages.
func (b *Builder) Seal() ([]byte, Meta, error) {
	if len(b.seqs) == 0 {
		return nil, Meta{}, fmt.Errorf("%w: nothing to seal", ErrEmpty)
	}
	if len(b.raw) > 0 {
		if err := b.closeFrame(); err != nil {
			return nil, Meta{}, err
		}
	}
	m := Meta{
		Stream:    b.opts.Stream,
		FirstSeq:  b.FirstSeq(),
		LastSeq:   b.LastSeq(),
		FirstTime: b.minTime,
		LastTime:  b.maxTime,
		Count:     len(b.seqs),
		RawSize:   b.rawSize,
		Frames:    len(b.frames),
		Codec:     b.opts.Codec,
		Version:   FormatVersion,
	}
	var subjects []byte
	if b.opts.Subjects {
		m.Filter = newFilter(len(b.subj.names), b.opts.MaxFilterSize)
		b.subjIdx = b.subj.encode(b.subjIdx[:0], b.seqs, m.Filter)
		subjects = b.subjIdx
	}
	b.footer = appendFooter(b.footer[:0], &m, b.frames, b.seqs, b.recLens, b.times, subjects)
	if len(b.footer) > maxFooterSize {
		return nil, Meta{}, fmt.Errorf("%w: footer of %d bytes, limit %d", ErrTooLarge, len(b.footer), maxFooterSize)
	}
	m.Checksum = crc32.Checksum(b.footer, castagnoli)
	m.Size = int64(len(b.body) + len(b.footer) + trailerSize)
	out := b.body
	if free := int64(cap(out)) - m.Size; free < 0 || free > m.Size/maxSlack {
		// The body has no room for the footer, or far more than the
		// block needs (a partial block, an outsized message): the block
		// gets a slice of its own size, which a tier may keep for long.
		out = append(make([]byte, 0, m.Size), b.body...)
	}
	out = append(out, b.footer...)
	out = appendTrailer(out, int64(len(b.body)), len(b.footer), m.Checksum)
	b.body = nil // it is the caller's now
	b.last = len(out)
	b.Reset()
	return out, m, nil
}

// firstBody is the capacity of a builder's first body, beyond the header.
const firstBody = 4 << 10

// maxSlack: a sealed block is handed out in the builder's body when the
// body's spare capacity is at most 1/maxSlack of the block.
const maxSlack = 16

// newBody returns an empty body holding the header, with room for a block
// the size of the last one sealed and the room to compress one frame more
// (see frameRoom): a block as large as the last is neither grown nor, from
// about 600 KiB up at the default frame size, copied at Seal, whose spare
// capacity is then within 1/maxSlack of it. The first block starts with
// firstBody bytes, since a builder may seal a single small one; growBody
// sizes it once its first frames show how well the stream compresses.
func (b *Builder) newBody() []byte {
	n := headerSize + firstBody
	if b.last > 0 {
		n = min(b.last+frameRoom(b.opts.Codec, b.opts.FrameSize), b.maxBody())
	}
	body := make([]byte, 0, n)
	return binary.LittleEndian.AppendUint16(append(body, magic...), FormatVersion)
}

// maxBody is the capacity of the body of a full block that compresses
// nothing: TargetSize of frames, the last frame's overrun and a footer of
// 1/32 of the target (8 bytes a message of 256 bytes).
func (b *Builder) maxBody() int {
	return headerSize + int(b.opts.TargetSize) + 2*b.opts.FrameSize + int(b.opts.TargetSize)/32 + trailerSize
}

// growBody returns a copy of the body with room for at least room more
// bytes and, as far as its frames so far tell, for the rest of the block:
// their stored bytes scaled from the raw bytes they hold to TargetSize, a
// footer of footerPerMsg a message, and room for one frame more. A block
// that outgrows its body is then copied once, rather than doubled frame
// after frame and copied again at Seal to shed the spare half: sealing
// the first block of 4 KiB messages (BenchmarkSealFirst) went from 5.5 MB
// allocated and 5.7 ms to 1.6 MB and 2.4 ms, and each term's builders
// start with such a block. A block that seals short of the target is
// copied at Seal as before.
func (b *Builder) growBody(room int) []byte {
	n := max(len(b.body)+room, 2*cap(b.body))
	if done := b.rawSize - int64(len(b.raw)); done > 0 && done < b.opts.TargetSize {
		scale := float64(b.opts.TargetSize) / float64(done)
		stored := float64(len(b.body) - headerSize)
		proj := headerSize + int(stored*scale) + footerPerMsg*int(float64(b.open)*scale) + room + trailerSize
		n = max(len(b.body)+room, min(proj, b.maxBody()))
	}
	nb := make([]byte, len(b.body), n)
	copy(nb, b.body)
	return nb
}

// footerPerMsg is what growBody counts a message's share of the footer:
// its sequence, time and record length, varint-encoded deltas.
const footerPerMsg = 8

// frameRoom is the room in the body compressing an open frame of n raw
// bytes may need: S2's bound, or for zstd its bound rounded up.
func frameRoom(c Codec, n int) int {
	switch c {
	case CodecS2:
		if m := s2.MaxEncodedLen(n); m > 0 {
			return m
		}
	case CodecZstd:
		return n + n/128 + 1<<10
	}
	return n
}

// Reset discards the messages held; the builder keeps its options and
// buffers.
func (b *Builder) Reset() {
	if b.body != nil {
		if cap(b.body) > 4*int(b.opts.TargetSize) {
			b.body = nil
		} else {
			b.body = binary.LittleEndian.AppendUint16(append(b.body[:0], magic...), FormatVersion)
		}
	}
	b.raw = b.raw[:0]
	b.frames = b.frames[:0]
	b.open = 0
	b.seqs = b.seqs[:0]
	b.recLens = b.recLens[:0]
	b.times = b.times[:0]
	b.rawSize = 0
	b.minTime, b.maxTime = 0, 0
	if cap(b.footer) > maxFooterSize/4 {
		b.footer = nil
	}
	if cap(b.subjIdx) > maxFooterSize/4 {
		b.subjIdx = nil
	}
	b.subj.reset()
}

// uvarintLen returns the length of the uvarint encoding of v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
