package block

import (
	"bytes"
	"encoding/binary"
	"iter"
	"slices"
	"sort"
	"strings"
)

// Entry is one message of a subject in a block's subject index.
type Entry struct {
	// Seq is the message's stream sequence.
	Seq uint64
	// Mark is the message's Msg.Mark, as the builder was given it.
	Mark uint8
}

// restartInterval is how many subjects of the subject index share one
// restart point, an entry that holds its subject in full. Part of the
// durable format.
const restartInterval = 16

// flagSubjects marks a footer that holds a subject index after its message
// index. Part of the durable format.
const flagSubjects = 2

// subjectIndex is a decoded subject index: the encoded entries and the
// restart table, checked when the block was opened. Lookups decode at most
// restartInterval entries after a binary search of the restarts; nothing
// per subject is kept decoded.
type subjectIndex struct {
	n        int      // distinct subjects
	entries  []byte   // the entries, a copy owned by the index
	restarts []uint32 // offset in entries of every restartInterval-th entry
	first    uint64   // the block's first seq
}

// subjectBuilder collects the subject index of the block a Builder fills.
// Subjects are numbered in the order they first appear.
type subjectBuilder struct {
	ids   map[string]uint32
	names []string
	bytes int      // sum of the names' lengths
	of    []uint32 // per message: its subject's number
	marks []uint8  // per message

	// Scratch for encode.
	order  []uint32 // subject numbers in name order
	starts []int    // per subject number: start of its messages in byMsg
	byMsg  []int32  // message positions grouped by subject
}

func (sb *subjectBuilder) reset() {
	if len(sb.ids) > 1<<16 {
		sb.ids = nil // do not keep the buckets of an outsized block
	}
	if sb.ids == nil {
		sb.ids = make(map[string]uint32)
	}
	clear(sb.ids)
	clear(sb.names) // let the strings go
	sb.names = sb.names[:0]
	sb.bytes = 0
	sb.of = sb.of[:0]
	sb.marks = sb.marks[:0]
}

// add records the subject and mark of the next message.
func (sb *subjectBuilder) add(subject string, mark uint8) {
	id, ok := sb.ids[subject]
	if !ok {
		id = uint32(len(sb.names))
		name := strings.Clone(subject) // the caller's string may share a larger buffer
		sb.ids[name] = id
		sb.names = append(sb.names, name)
		sb.bytes += len(name)
	}
	sb.of = append(sb.of, id)
	sb.marks = append(sb.marks, mark)
}

// encode appends the subject index of the messages added, whose sequences
// are seqs, to dst, and adds every subject to filter (when not nil).
//
//	subject index
//	  subjects      uvarint  distinct subjects, 1..count
//	  entries len   uvarint
//	  entries, one per subject in ascending byte order:
//	    shared      uvarint  bytes in common with the previous subject;
//	                         0 at a restart point (every 16th entry)
//	    suffix len  uvarint
//	    suffix      [suffix len]byte  the rest of the subject
//	    msgs        uvarint  messages on the subject, >= 1
//	    list len    uvarint  bytes of the list
//	    list, one item per message in sequence order:
//	      seq delta uvarint  seq - the subject's previous seq; for the
//	                         first, seq - the block's first seq
//	      mark      byte     Msg.Mark
//	  restarts      uint32 for each restart point: its offset in entries
func (sb *subjectBuilder) encode(dst []byte, seqs []uint64, filter []byte) []byte {
	n := len(sb.names)
	sb.order = sb.order[:0]
	for i := range n {
		sb.order = append(sb.order, uint32(i))
	}
	slices.SortFunc(sb.order, func(a, b uint32) int {
		switch x, y := sb.names[a], sb.names[b]; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	// Group the messages by subject, keeping sequence order in a group.
	sb.starts = slices.Grow(sb.starts[:0], n+1)[:n+1]
	clear(sb.starts)
	for _, id := range sb.of {
		sb.starts[id+1]++
	}
	for i := 1; i <= n; i++ {
		sb.starts[i] += sb.starts[i-1]
	}
	sb.byMsg = slices.Grow(sb.byMsg[:0], len(sb.of))[:len(sb.of)]
	next := slices.Clone(sb.starts[:n])
	for i, id := range sb.of {
		sb.byMsg[next[id]] = int32(i)
		next[id]++
	}

	// The entries go after their length, which is known once they are
	// written: write them to the end of dst, then move them.
	dst = binary.AppendUvarint(dst, uint64(n))
	start := len(dst)
	restarts := make([]uint32, 0, (n+restartInterval-1)/restartInterval)
	prev := ""
	for r, id := range sb.order {
		name := sb.names[id]
		if filter != nil {
			filterAdd(filter, subjectHash(name))
		}
		shared := 0
		if r%restartInterval == 0 {
			restarts = append(restarts, uint32(len(dst)-start))
		} else {
			shared = commonPrefix(prev, name)
		}
		prev = name
		dst = binary.AppendUvarint(dst, uint64(shared))
		dst = binary.AppendUvarint(dst, uint64(len(name)-shared))
		dst = append(dst, name[shared:]...)
		msgs := sb.byMsg[sb.starts[id]:sb.starts[id+1]]
		listLen, last := 0, seqs[0]
		for _, i := range msgs {
			listLen += uvarintLen(seqs[i]-last) + 1
			last = seqs[i]
		}
		dst = binary.AppendUvarint(dst, uint64(len(msgs)))
		dst = binary.AppendUvarint(dst, uint64(listLen))
		last = seqs[0]
		for _, i := range msgs {
			dst = binary.AppendUvarint(dst, seqs[i]-last)
			dst = append(dst, sb.marks[i])
			last = seqs[i]
		}
	}
	entriesLen := len(dst) - start
	lenBytes := uvarintLen(uint64(entriesLen))
	dst = slices.Grow(dst, lenBytes)[:len(dst)+lenBytes]
	copy(dst[start+lenBytes:], dst[start:start+entriesLen])
	binary.PutUvarint(dst[start:], uint64(entriesLen))
	for _, off := range restarts {
		dst = binary.LittleEndian.AppendUint32(dst, off)
	}
	return dst
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// parseSubjects decodes and checks the subject index of footer f: subjects
// strictly ascending, restart points where the table says, and every message
// of the block listed exactly once, under one subject, in sequence order.
// It checks the index against the message index only: the records' own
// subjects are in the frames, which the footer's checksum does not cover.
func (f *footer) parseSubjects(d *footerDecoder) error {
	m := &f.meta
	n := int(d.bounded("subject count", 1, uint64(m.Count)))
	size := int(d.bounded("subject index length", 0, uint64(d.remaining())))
	base := d.base + int64(d.pos)
	entries := d.bytes("subject index", size)
	nr := (n + restartInterval - 1) / restartInterval
	table := d.bytes("subject restarts", 4*nr)
	if d.err != nil {
		return d.err
	}
	x := &subjectIndex{n: n, entries: bytes.Clone(entries), restarts: make([]uint32, nr), first: m.FirstSeq}
	for i := range x.restarts {
		x.restarts[i] = binary.LittleEndian.Uint32(table[4*i:])
	}
	e := &footerDecoder{b: x.entries, base: base}
	seen := make([]uint64, (m.Count+63)/64)
	var prev, cur []byte
	total := 0
	for r := range n {
		at := e.pos
		if r%restartInterval == 0 && x.restarts[r/restartInterval] != uint32(at) {
			e.fail("subject index: restart %d at offset %d, entry %d is at %d", r/restartInterval, x.restarts[r/restartInterval], r, at)
			return e.err
		}
		shared := int(e.bounded("shared prefix", 0, uint64(len(prev))))
		if r%restartInterval == 0 && shared != 0 {
			e.pos = at
			e.fail("subject index: restart entry %d shares %d bytes", r, shared)
		}
		suffix := e.bytes("subject suffix", int(e.bounded("subject suffix length", 0, uint64(e.remaining()))))
		msgs := int(e.bounded("subject message count", 1, uint64(m.Count-total)))
		list := e.bytes("subject message list", int(e.bounded("subject message list length", 2*uint64(msgs), uint64(e.remaining()))))
		if e.err != nil {
			return e.err
		}
		cur = append(append(cur[:0], prev[:shared]...), suffix...)
		if r > 0 && bytes.Compare(prev, cur) >= 0 {
			e.pos = at
			e.fail("subject index: subject %d %q not after %q", r, cur, prev)
			return e.err
		}
		if err := f.checkList(e, at, list, msgs, seen); err != nil {
			return err
		}
		total += msgs
		prev, cur = cur, prev
	}
	switch {
	case e.remaining() != 0:
		e.fail("subject index: %d bytes after the last entry", e.remaining())
	case total != m.Count:
		e.fail("subject index lists %d messages, count is %d", total, m.Count)
	}
	if e.err != nil {
		return e.err
	}
	f.subj = x
	return nil
}

// checkList checks the message list of the subject entry at offset at:
// msgs items filling list, each a message of the block not listed before,
// in sequence order.
func (f *footer) checkList(e *footerDecoder, at int, list []byte, msgs int, seen []uint64) error {
	bad := func(format string, args ...any) error {
		e.pos = at
		e.fail("subject index: entry at %d: "+format, append([]any{at}, args...)...)
		return e.err
	}
	p, seq := list, f.meta.FirstSeq
	for j := range msgs {
		delta, n := binary.Uvarint(p)
		switch {
		case n <= 0 || n >= len(p):
			return bad("message %d of %d: bad seq delta or no mark", j, msgs)
		case j > 0 && delta == 0, delta > f.meta.LastSeq-seq:
			return bad("message %d of %d: seq delta %d after seq %d", j, msgs, delta, seq)
		}
		p = p[n+1:]
		seq += delta
		i, ok := f.index(seq)
		if !ok || seen[i/64]&(1<<(i%64)) != 0 {
			return bad("seq %d is not a message of the block, or is listed twice", seq)
		}
		seen[i/64] |= 1 << (i % 64)
	}
	if len(p) != 0 {
		return bad("%d bytes after its %d messages", len(p), msgs)
	}
	return nil
}

// entry is one decoded entry of a subject index.
type entry struct {
	shared int
	suffix []byte
	msgs   int
	list   []byte
	next   int // offset of the next entry
}

// entryAt decodes the entry at off, which parseSubjects has checked.
func (x *subjectIndex) entryAt(off int) entry {
	var e entry
	e.shared, off = uvarintAt(x.entries, off)
	e.suffix, off = x.bytesAt(off)
	e.msgs, off = uvarintAt(x.entries, off)
	e.list, e.next = x.bytesAt(off)
	return e
}

// restartKey returns the subject of restart point i, held whole.
func (x *subjectIndex) restartKey(i int) []byte {
	_, off := uvarintAt(x.entries, int(x.restarts[i])) // shared: 0
	key, _ := x.bytesAt(off)
	return key
}

// bytesAt decodes a length-prefixed byte string at off and returns it and
// the offset after it.
func (x *subjectIndex) bytesAt(off int) ([]byte, int) {
	n, off := uvarintAt(x.entries, off)
	return x.entries[off : off+n], off + n
}

// uvarintAt decodes the uvarint at off in p and returns it and the offset
// after it.
func uvarintAt(p []byte, off int) (int, int) {
	if b := p[off]; b < 0x80 {
		return int(b), off + 1
	}
	v, n := binary.Uvarint(p[off:])
	return int(v), off + n
}

// decodeList returns the messages of entry e.
func (x *subjectIndex) decodeList(e entry) []Entry {
	out := make([]Entry, e.msgs)
	p, seq := e.list, x.first
	for i := range out {
		d, n := binary.Uvarint(p)
		seq += d
		out[i] = Entry{Seq: seq, Mark: p[n]}
		p = p[n+1:]
	}
	return out
}

// seek returns the offset of the restart point to scan from for subjects at
// or after s: the last restart whose subject is at or before s, or the first.
func (x *subjectIndex) seek(s string) int {
	i := sort.Search(len(x.restarts), func(i int) bool { return string(x.restartKey(i)) > s })
	return int(x.restarts[max(i-1, 0)])
}

// HasSubjects reports whether the block has a subject index (it was sealed
// with Options.Subjects).
func (r *Reader) HasSubjects() bool { return r.f.subj != nil }

// SubjectCount returns the number of distinct subjects in the subject index,
// or 0 without one.
func (r *Reader) SubjectCount() int {
	if r.f.subj == nil {
		return 0
	}
	return r.f.subj.n
}

// Subject returns the messages of the block on subject, in sequence order,
// from the subject index: no frame is read. It returns nil when the block
// holds no message on subject or has no subject index. It decodes at most
// 16 entries after a binary search. The slice is the caller's.
func (r *Reader) Subject(subject string) []Entry {
	x := r.f.subj
	if x == nil {
		return nil
	}
	var buf [128]byte
	key := buf[:0]
	end := len(x.entries)
	for off := x.seek(subject); off < end; {
		e := x.entryAt(off)
		key = append(key[:e.shared], e.suffix...)
		switch {
		case string(key) == subject:
			return x.decodeList(e)
		case string(key) > subject:
			return nil
		}
		off = e.next
	}
	return nil
}

// Subjects returns an iterator over the block's subjects at or after from,
// in ascending byte order, each with its messages in sequence order, from
// the subject index (no frame is read). Without a subject index it yields
// nothing. Each subject string and slice yielded is newly allocated and the
// caller's. A prefix scan starts at the prefix and stops at the first
// subject without it.
func (r *Reader) Subjects(from string) iter.Seq2[string, []Entry] {
	return func(yield func(string, []Entry) bool) {
		x := r.f.subj
		if x == nil {
			return
		}
		var key []byte
		for off := x.seek(from); off < len(x.entries); {
			e := x.entryAt(off)
			key = append(key[:e.shared], e.suffix...)
			off = e.next
			if string(key) < from {
				continue
			}
			if !yield(string(key), x.decodeList(e)) {
				return
			}
		}
	}
}

// Filter returns a filter (see FilterMayContain) over the block's subjects
// of at most maxSize bytes (0: DefaultMaxFilterSize), as Seal makes it for
// Meta.Filter, or nil without a subject index. It rebuilds an index entry's
// filter from the block alone.
func (r *Reader) Filter(maxSize int) []byte {
	x := r.f.subj
	if x == nil {
		return nil
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxFilterSize
	}
	f := newFilter(x.n, maxSize)
	var key []byte
	for off := 0; off < len(x.entries); {
		e := x.entryAt(off)
		key = append(key[:e.shared], e.suffix...)
		filterAdd(f, subjectHash(string(key)))
		off = e.next
	}
	return f
}
