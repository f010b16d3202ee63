package block

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"sort"
)

// castagnoli is the CRC-32C table used for frames and footers.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Meta summarises a block. It is what an index of blocks keeps about each
// one, and all of it comes from the block's footer and trailer.
type Meta struct {
	// Stream is the name of the stream the messages come from.
	Stream string
	// FirstSeq and LastSeq are the first and last sequences in the block.
	FirstSeq, LastSeq uint64
	// FirstTime and LastTime are the earliest and latest message timestamps
	// (unix nanoseconds): those of the first and last messages when, as
	// JetStream assigns them, timestamps do not decrease along the stream.
	FirstTime, LastTime int64
	// Count is the number of messages; it is below LastSeq-FirstSeq+1 when
	// the block has gaps.
	Count int
	// RawSize is the sum of the frames' uncompressed lengths; Size is the
	// length of the whole block.
	RawSize, Size int64
	// Frames is the number of frames.
	Frames int
	// Codec is the compression of the frames.
	Codec Codec
	// Checksum is the CRC-32C of the footer; it identifies the block's content.
	Checksum uint32
	// Version is the block format version.
	Version uint16
	// Filter is a Bloom filter over the block's distinct subjects (see
	// FilterMayContain), made by Seal when the builder has
	// Options.Subjects; nil otherwise. A Reader's Meta leaves it nil:
	// Reader.Filter rebuilds it from the block.
	Filter []byte
}

// frame is one entry of the frame table, with the position of its first
// message in the message index.
type frame struct {
	off      int64  // offset of the stored bytes in the block
	stored   int64  // stored (compressed) length
	raw      int    // raw length
	firstSeq uint64 // sequence of the first message
	count    int    // messages in the frame
	first    int    // index of the first message in the block
	crc      uint32 // CRC-32C of the stored bytes
}

// footer is a decoded footer: the block's summary, frame table and message
// index. seqs is nil when the block has no gaps (seq i is FirstSeq+i).
type footer struct {
	meta   Meta
	frames []frame
	seqs   []uint64 // nil when contiguous
	offs   []uint32 // offset of each record in its raw frame
	times  []int64
	sorted bool          // times do not decrease (flagTimesSorted)
	subj   *subjectIndex // nil without flagSubjects
	// rawFrames: a frame whose stored length equals its raw length is
	// stored as is (flagRawFrames, or codec none).
	rawFrames bool
}

// flagTimesSorted marks a footer whose message times do not decrease; its
// time column holds uvarints rather than varints. Part of the durable format.
const flagTimesSorted = 1

// flagRawFrames marks a footer of a compressed block some of whose frames
// are stored as is: a frame whose stored length equals its raw length.
// The builder stores a frame as is when the codec would save less than
// 1/rawFrameSaving of its bytes, and a compressed frame is then always
// shorter than its raw bytes, so the lengths tell the two apart. Part of
// the durable format.
const flagRawFrames = 4

// rawFrameSaving: a frame that the codec shrinks by less than
// 1/rawFrameSaving of its raw length is stored as is. Reading such a frame
// costs a copy at most (nothing, to read one message from memory), and
// storing it costs at most that share of its bytes more.
const rawFrameSaving = 32

// appendFooter appends the encoding of a footer to dst. recLens holds the
// record lengths, seqs and times the messages' sequences and timestamps,
// all in block order; m supplies the summary fields. subjects, when not
// nil, is the encoded subject index.
func appendFooter(dst []byte, m *Meta, frames []frame, seqs []uint64, recLens []uint32, times []int64, subjects []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m.Stream)))
	dst = append(dst, m.Stream...)
	dst = binary.AppendUvarint(dst, m.FirstSeq)
	dst = binary.AppendUvarint(dst, m.LastSeq-m.FirstSeq)
	dst = binary.AppendVarint(dst, m.FirstTime)
	dst = binary.AppendUvarint(dst, uint64(m.LastTime)-uint64(m.FirstTime))
	dst = binary.AppendUvarint(dst, uint64(m.Count))
	dst = binary.AppendUvarint(dst, uint64(m.RawSize))
	sorted := true
	for i := 1; i < len(times) && sorted; i++ {
		sorted = times[i] >= times[i-1]
	}
	dst = append(dst, byte(m.Codec))
	var flags byte
	if sorted {
		flags |= flagTimesSorted
	}
	if subjects != nil {
		flags |= flagSubjects
	}
	for _, f := range frames {
		if m.Codec != CodecNone && f.stored == int64(f.raw) {
			flags |= flagRawFrames
			break
		}
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(frames)))
	for _, f := range frames {
		dst = binary.AppendUvarint(dst, uint64(f.off))
		dst = binary.AppendUvarint(dst, uint64(f.stored))
		dst = binary.AppendUvarint(dst, uint64(f.raw))
		dst = binary.AppendUvarint(dst, f.firstSeq-m.FirstSeq)
		dst = binary.AppendUvarint(dst, uint64(f.count))
		dst = binary.LittleEndian.AppendUint32(dst, f.crc)
	}
	if uint64(m.Count) != m.LastSeq-m.FirstSeq+1 {
		for i := 1; i < len(seqs); i++ {
			dst = binary.AppendUvarint(dst, seqs[i]-seqs[i-1]-1)
		}
	}
	prevLen := int64(0)
	for _, l := range recLens {
		dst = binary.AppendVarint(dst, int64(l)-prevLen)
		prevLen = int64(l)
	}
	prev := m.FirstTime
	for _, t := range times {
		if sorted {
			dst = binary.AppendUvarint(dst, uint64(t-prev))
		} else {
			dst = binary.AppendVarint(dst, t-prev)
		}
		prev = t
	}
	return append(dst, subjects...)
}

// appendTrailer appends the trailer of a footer of footerLen bytes at
// footerOff with checksum crc.
func appendTrailer(dst []byte, footerOff int64, footerLen int, crc uint32) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(footerOff))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(footerLen))
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	dst = binary.LittleEndian.AppendUint16(dst, FormatVersion)
	return append(dst, magic...)
}

// trailer is a decoded trailer.
type trailer struct {
	footerOff int64
	footerLen int
	crc       uint32
}

// parseTrailer checks and decodes the trailer t of a block of size bytes.
func parseTrailer(t []byte, size int64) (trailer, error) {
	at := size - trailerSize
	if len(t) != trailerSize {
		return trailer{}, corruptf(at, "trailer of %d bytes, want %d", len(t), trailerSize)
	}
	if string(t[trailerSize-len(magic):]) != magic {
		return trailer{}, corruptf(at+trailerSize-int64(len(magic)), "bad trailer magic %q", t[trailerSize-len(magic):])
	}
	if v := binary.LittleEndian.Uint16(t[16:]); v != FormatVersion {
		return trailer{}, corruptf(at+16, "unsupported format version %d (want %d)", v, FormatVersion)
	}
	off := binary.LittleEndian.Uint64(t[0:])
	n := binary.LittleEndian.Uint32(t[8:])
	if n > maxFooterSize || int64(n) > size-trailerSize-headerSize {
		return trailer{}, corruptf(at+8, "footer length %d does not fit a block of %d bytes", n, size)
	}
	if off != uint64(size-trailerSize-int64(n)) {
		return trailer{}, corruptf(at, "footer offset %d, want %d for a footer of %d bytes in a block of %d", off, size-trailerSize-int64(n), n, size)
	}
	return trailer{footerOff: int64(off), footerLen: int(n), crc: binary.LittleEndian.Uint32(t[12:])}, nil
}

// parseHeader checks the block header h, found at offset 0.
func parseHeader(h []byte) error {
	if len(h) < headerSize || string(h[:len(magic)]) != magic {
		return corruptf(0, "bad header magic")
	}
	if v := binary.LittleEndian.Uint16(h[len(magic):]); v != FormatVersion {
		return corruptf(int64(len(magic)), "unsupported format version %d (want %d)", v, FormatVersion)
	}
	return nil
}

// footerDecoder reads the fields of a footer found at offset base in the
// block, recording the first error. Its methods return 0 once an error is
// recorded, so a caller checks err after a group of reads.
type footerDecoder struct {
	b    []byte
	pos  int
	base int64
	err  error
}

func (d *footerDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corruptf(d.base+int64(d.pos), format, args...)
	}
}

func (d *footerDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.fail("footer: bad %s varint", what)
		return 0
	}
	d.pos += n
	return v
}

func (d *footerDecoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		d.fail("footer: bad %s varint", what)
		return 0
	}
	d.pos += n
	return v
}

// bounded reads a uvarint and checks it is in [lo, hi].
func (d *footerDecoder) bounded(what string, lo, hi uint64) uint64 {
	at := d.pos
	v := d.uvarint(what)
	if d.err == nil && (v < lo || v > hi) {
		d.pos = at
		d.fail("footer: %s %d out of range [%d, %d]", what, v, lo, hi)
		return 0
	}
	return v
}

func (d *footerDecoder) bytes(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.pos {
		d.fail("footer: %s of %d bytes past the end", what, n)
		return nil
	}
	v := d.b[d.pos : d.pos+n]
	d.pos += n
	return v
}

func (d *footerDecoder) remaining() int { return len(d.b) - d.pos }

// parseFooter decodes footer bytes b, found at offset base in the block, for
// a block whose frames occupy [headerSize, base). maxRaw bounds the raw
// length of a frame.
func parseFooter(b []byte, base int64, maxRaw int) (*footer, error) {
	d := &footerDecoder{b: b, base: base}
	f := &footer{}
	m := &f.meta
	m.Stream = string(d.bytes("stream", int(d.bounded("stream length", 1, maxStreamLen))))
	m.FirstSeq = d.bounded("first seq", 1, math.MaxUint64)
	m.LastSeq = m.FirstSeq + d.bounded("seq span", 0, math.MaxUint64-m.FirstSeq)
	m.FirstTime = d.varint("first time")
	m.LastTime = int64(uint64(m.FirstTime) + d.bounded("time span", 0, uint64(math.MaxInt64)-uint64(m.FirstTime)))
	// Every message takes at least two index bytes (length and time) and
	// two raw bytes (the record's two length varints).
	count := d.bounded("count", 1, min(MaxMsgs, uint64(d.remaining()/2), m.LastSeq-m.FirstSeq+1))
	m.Count = int(count)
	m.RawSize = int64(d.bounded("raw size", 2*count, uint64(maxRaw)*count))
	if d.err != nil {
		return nil, d.err
	}
	subjects := false
	if c := d.bytes("codec", 1); c != nil {
		m.Codec = Codec(c[0])
		if !m.Codec.valid() {
			d.pos--
			d.fail("footer: unknown codec %d", m.Codec)
		}
	}
	if fl := d.bytes("flags", 1); fl != nil {
		if fl[0]&^(flagTimesSorted|flagSubjects|flagRawFrames) != 0 {
			d.pos--
			d.fail("footer: unknown flags %#x", fl[0])
		}
		f.sorted = fl[0]&flagTimesSorted != 0
		f.rawFrames = fl[0]&flagRawFrames != 0 || m.Codec == CodecNone
		subjects = fl[0]&flagSubjects != 0
	}
	// A frame table entry takes at least 9 bytes (five varints and a CRC).
	nframes := int(d.bounded("frame count", 1, min(count, uint64(d.remaining()/9))))
	if d.err != nil {
		return nil, d.err
	}
	m.Frames = nframes
	f.frames = make([]frame, nframes)
	if err := f.parseFrames(d, base, maxRaw); err != nil {
		return nil, err
	}
	if err := f.parseIndex(d); err != nil {
		return nil, err
	}
	if subjects {
		if err := f.parseSubjects(d); err != nil {
			return nil, err
		}
	}
	if d.remaining() != 0 {
		d.fail("footer: %d trailing bytes", d.remaining())
		return nil, d.err
	}
	return f, nil
}

// parseFrames decodes the frame table and checks that the frames lie back
// to back from the header to the footer and hold count messages.
func (f *footer) parseFrames(d *footerDecoder, footerOff int64, maxRaw int) error {
	m := &f.meta
	next, first, raw := int64(headerSize), 0, int64(0)
	for i := range f.frames {
		fr := &f.frames[i]
		at := d.pos
		fr.off = int64(d.uvarint("frame offset"))
		fr.stored = int64(d.bounded("frame stored length", 1, uint64(footerOff-next)))
		fr.raw = int(d.bounded("frame raw length", 2, uint64(maxRaw)))
		fr.firstSeq = m.FirstSeq + d.bounded("frame first seq", 0, m.LastSeq-m.FirstSeq)
		fr.count = int(d.bounded("frame count", 1, uint64(m.Count-first)))
		crc := d.bytes("frame crc", 4)
		if d.err != nil {
			return d.err
		}
		fr.crc = binary.LittleEndian.Uint32(crc)
		fr.first = first
		if fr.off != next {
			d.pos = at
			d.fail("footer: frame %d at offset %d, want %d", i, fr.off, next)
			return d.err
		}
		if fr.count > fr.raw/2 {
			d.pos = at
			d.fail("footer: frame %d holds %d messages in %d raw bytes", i, fr.count, fr.raw)
			return d.err
		}
		next += fr.stored
		first += fr.count
		raw += int64(fr.raw)
	}
	switch {
	case next != footerOff:
		d.fail("footer: frames end at offset %d, footer starts at %d", next, footerOff)
	case first != m.Count:
		d.fail("footer: frames hold %d messages, count is %d", first, m.Count)
	case raw != m.RawSize:
		d.fail("footer: frames hold %d raw bytes, raw size is %d", raw, m.RawSize)
	}
	return d.err
}

// parseIndex decodes the message index and checks it against the summary
// and the frame table.
func (f *footer) parseIndex(d *footerDecoder) error {
	m := &f.meta
	n := m.Count
	if d.remaining() < 2*n {
		d.fail("footer: message index of %d messages in %d bytes", n, d.remaining())
		return d.err
	}
	if uint64(n) != m.LastSeq-m.FirstSeq+1 {
		f.seqs = make([]uint64, n)
		f.seqs[0] = m.FirstSeq
		for i := 1; i < n; i++ {
			// The n-i messages from i on need distinct seqs up to LastSeq,
			// which the previous seq leaves room for.
			prev := f.seqs[i-1]
			f.seqs[i] = prev + 1 + d.bounded("seq gap", 0, m.LastSeq-prev-uint64(n-i))
		}
		if d.err != nil {
			return d.err
		}
		if f.seqs[n-1] != m.LastSeq {
			d.fail("footer: last indexed seq %d, want %d", f.seqs[n-1], m.LastSeq)
			return d.err
		}
	}
	f.offs = make([]uint32, n)
	prevLen := int64(0)
	for _, fr := range f.frames {
		if f.seqAt(fr.first) != fr.firstSeq {
			d.fail("footer: frame at offset %d starts at seq %d, index says %d", fr.off, fr.firstSeq, f.seqAt(fr.first))
			return d.err
		}
		off := 0
		for i := fr.first; i < fr.first+fr.count; i++ {
			at := d.pos
			l := prevLen + d.varint("record length delta")
			if d.err != nil {
				return d.err
			}
			if l < 2 || l > int64(fr.raw-off) {
				d.pos = at
				d.fail("footer: record length %d out of range [2, %d]", l, fr.raw-off)
				return d.err
			}
			f.offs[i] = uint32(off)
			off += int(l)
			prevLen = l
		}
		if off != fr.raw {
			d.fail("footer: records of frame at offset %d hold %d bytes, want %d", fr.off, off, fr.raw)
			return d.err
		}
	}
	f.times = make([]int64, n)
	prev, lo, hi := m.FirstTime, int64(math.MaxInt64), int64(math.MinInt64)
	for i := range f.times {
		at := d.pos
		var t int64
		if f.sorted {
			t = prev + int64(d.bounded("time delta", 0, uint64(m.LastTime)-uint64(prev)))
		} else {
			t = prev + d.varint("time delta")
		}
		if d.err == nil && (t < m.FirstTime || t > m.LastTime) {
			d.pos = at
			d.fail("footer: time %d outside the block's range [%d, %d]", t, m.FirstTime, m.LastTime)
		}
		if d.err != nil {
			return d.err
		}
		f.times[i], prev = t, t
		lo, hi = min(lo, t), max(hi, t)
	}
	if lo != m.FirstTime || hi != m.LastTime {
		d.fail("footer: times span [%d, %d], summary says [%d, %d]", lo, hi, m.FirstTime, m.LastTime)
	}
	return d.err
}

// index returns the position of seq in the block.
func (f *footer) index(seq uint64) (int, bool) {
	if seq < f.meta.FirstSeq || seq > f.meta.LastSeq {
		return 0, false
	}
	if f.seqs == nil {
		return int(seq - f.meta.FirstSeq), true
	}
	i := sort.Search(len(f.seqs), func(i int) bool { return f.seqs[i] >= seq })
	return i, f.seqs[i] == seq
}

// seqAt returns the sequence of the i-th message.
func (f *footer) seqAt(i int) uint64 {
	if f.seqs == nil {
		return f.meta.FirstSeq + uint64(i)
	}
	return f.seqs[i]
}
