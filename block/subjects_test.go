package block

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// kvMsgs returns n messages in the shape of a KV bucket's stream: updates
// of keys "$KV.B.<key>" drawn from nkeys, some marked deletes (1) and
// purges (2), with gaps in the sequence. It returns the expected subject
// index too.
func kvMsgs(seed uint64, n, nkeys int) ([]Msg, map[string][]Entry) {
	rng := rand.New(rand.NewPCG(seed, 7))
	want := map[string][]Entry{}
	msgs := make([]Msg, 0, n)
	seq := uint64(1000)
	for i := range n {
		seq += 1 + uint64(rng.IntN(3)/2) // about a third of the seqs are gaps
		key := fmt.Sprintf("$KV.B.user.%05d.profile", rng.IntN(nkeys))
		var mark uint8
		switch r := rng.IntN(20); {
		case r == 0:
			mark = 1
		case r == 1:
			mark = 2
		}
		msgs = append(msgs, Msg{Seq: seq, Subject: key, Data: []byte(fmt.Sprintf("v%d", i)), Time: int64(i), Mark: mark})
		want[key] = append(want[key], Entry{Seq: seq, Mark: mark})
	}
	return msgs, want
}

// checkSubjects checks every lookup path of r against want.
func checkSubjects(t testing.TB, r *Reader, want map[string][]Entry) {
	t.Helper()
	if !r.HasSubjects() || r.SubjectCount() != len(want) {
		t.Fatalf("HasSubjects %v, %d subjects; want %d", r.HasSubjects(), r.SubjectCount(), len(want))
	}
	names := make([]string, 0, len(want))
	for s, es := range want {
		names = append(names, s)
		if got := r.Subject(s); !slices.Equal(got, es) {
			t.Fatalf("Subject(%q) = %v, want %v", s, got, es)
		}
		for _, absent := range []string{s + "x", s[:max(len(s)-1, 0)], s + "\x00"} {
			if _, ok := want[absent]; !ok && r.Subject(absent) != nil {
				t.Fatalf("Subject(%q) found an absent subject", absent)
			}
		}
	}
	slices.Sort(names)
	for _, absent := range []string{"", "\x00", "$", "zzz", "\xff\xff"} {
		if _, ok := want[absent]; !ok && r.Subject(absent) != nil {
			t.Fatalf("Subject(%q) found an absent subject", absent)
		}
	}
	// Every start point yields the subjects at or after it, in order.
	starts := []string{"", names[0], names[len(names)/2], names[len(names)/2] + "\x00", names[len(names)-1], "\xff"}
	for _, from := range starts {
		i, _ := slices.BinarySearch(names, from)
		var got []string
		for s, es := range r.Subjects(from) {
			if !slices.Equal(es, want[s]) {
				t.Fatalf("Subjects(%q) yields %q with %v, want %v", from, s, es, want[s])
			}
			got = append(got, s)
		}
		if !slices.Equal(got, names[i:]) {
			t.Fatalf("Subjects(%q) yields %d subjects, want %d", from, len(got), len(names)-i)
		}
	}
	// Stopping early stops.
	n := 0
	for range r.Subjects("") {
		n++
		if n == 3 {
			break
		}
	}
	if n != min(3, len(names)) {
		t.Fatalf("iteration stopped after %d", n)
	}
}

func TestSubjectIndex(t *testing.T) {
	cases := []struct {
		name        string
		n, keys     int
		frame       int
		codec       Codec
		wantNoDupes bool
	}{
		{"one message", 1, 1, 0, CodecS2, true},
		{"one key", 50, 1, 0, CodecNone, false},
		{"15 keys", 15, 15, 0, CodecS2, false},
		{"restart interval", 400, 16, 256, CodecZstd, false},
		{"17 keys", 170, 17, 0, CodecS2, false},
		{"kv block", 20_000, 5_000, 4 << 10, CodecS2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs, want := kvMsgs(uint64(c.n), c.n, c.keys)
			blk, meta := seal(t, Options{Stream: "KV_B", Codec: c.codec, FrameSize: c.frame, Subjects: true}, msgs)
			r := openBlock(t, blk, meta)
			checkSubjects(t, r, want)
			if !bytes.Equal(r.Filter(0), meta.Filter) || len(meta.Filter) < minFilterSize {
				t.Fatalf("rebuilt filter differs from Seal's (%d bytes)", len(meta.Filter))
			}
			for s := range want {
				if !FilterMayContain(meta.Filter, s) {
					t.Fatalf("filter says no to %q", s)
				}
			}
			// Get and Range leave Mark 0.
			for _, m := range rangeAll(t, r, 0, 0) {
				if m.Mark != 0 {
					t.Fatalf("Range returned mark %d", m.Mark)
				}
			}
			r2, err := open(t.Context(), int64(len(blk)), bytesRange(blk), defaultConfig)
			if err != nil {
				t.Fatal(err)
			}
			checkSubjects(t, r2, want)
		})
	}
}

// TestSubjectIndexShapes covers subjects that stress the prefix coding:
// the empty subject, one long enough to outgrow a lookup's buffer, bytes
// above 0x7f, and subjects that are prefixes of others.
func TestSubjectIndexShapes(t *testing.T) {
	long := strings.Repeat("long.", 100)
	subjects := []string{"", "a", "a.b", "a.b.c", "ab", long, long + "x", long + "y", "ünïcode.ß", "\xff", "\x00"}
	for i := range 40 {
		subjects = append(subjects, fmt.Sprintf("p.%03d", i), fmt.Sprintf("p.%03d.q", i))
	}
	var msgs []Msg
	want := map[string][]Entry{}
	for i := range 3 * len(subjects) {
		s := subjects[(i*7)%len(subjects)]
		seq := uint64(1 + 2*i)
		msgs = append(msgs, Msg{Seq: seq, Subject: s, Time: 5, Mark: uint8(i)})
		want[s] = append(want[s], Entry{Seq: seq, Mark: uint8(i)})
	}
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2, Subjects: true}, msgs)
	checkSubjects(t, openBlock(t, blk, meta), want)
}

func TestNoSubjectIndex(t *testing.T) {
	msgs, _ := kvMsgs(1, 100, 10)
	blk, meta := seal(t, Options{Stream: "S", Codec: CodecS2}, msgs)
	r := openBlock(t, blk, meta)
	if meta.Filter != nil || r.HasSubjects() || r.SubjectCount() != 0 || r.Subject(msgs[0].Subject) != nil || r.Filter(0) != nil {
		t.Fatal("a block sealed without Subjects answers subject lookups")
	}
	for range r.Subjects("") {
		t.Fatal("Subjects yields without a subject index")
	}
}

// TestSubjectIndexBuilderReuse seals two blocks with one builder: the
// second must not see the first's subjects.
func TestSubjectIndexBuilderReuse(t *testing.T) {
	b, err := NewBuilder(Options{Stream: "S", Subjects: true})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := kvMsgs(1, 300, 50)
	second, want := kvMsgs(2, 300, 20)
	shift := first[len(first)-1].Seq
	for _, m := range first {
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	for _, m := range second {
		m.Seq += shift
		if err := b.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	blk, meta, err := b.Seal()
	if err != nil {
		t.Fatal(err)
	}
	shifted := map[string][]Entry{}
	for s, es := range want {
		for _, e := range es {
			shifted[s] = append(shifted[s], Entry{Seq: e.Seq + shift, Mark: e.Mark})
		}
	}
	checkSubjects(t, openBlock(t, blk, meta), shifted)
}

func TestFullBySubjects(t *testing.T) {
	b, err := NewBuilder(Options{Stream: "S", Codec: CodecNone, TargetSize: MaxTargetSize, Subjects: true})
	if err != nil {
		t.Fatal(err)
	}
	subject := strings.Repeat("s", 1<<20)
	n := 0
	for !b.Full() {
		n++
		if err := b.Add(Msg{Seq: uint64(n), Subject: fmt.Sprintf("%d.%s", n, subject)}); err != nil {
			t.Fatal(err)
		}
	}
	if n != 32 { // 32 subjects of just over 1 MiB pass 32 MiB

		t.Fatalf("full after %d subjects of 1 MiB", n)
	}
}

func TestFilterOptions(t *testing.T) {
	for _, size := range []int{-1, MaxFilterSize + 1} {
		if _, err := NewBuilder(Options{Stream: "S", MaxFilterSize: size}); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("MaxFilterSize %d: %v, want ErrInvalidOption", size, err)
		}
	}
	b, err := NewBuilder(Options{Stream: "S"})
	if err != nil || b.Options().MaxFilterSize != DefaultMaxFilterSize {
		t.Fatalf("default max filter size: %+v, %v", b.Options(), err)
	}
}

func TestSubjectHashIsFNV(t *testing.T) {
	for _, s := range []string{"", "a", "$KV.B.key", strings.Repeat("x", 1000)} {
		h := fnv.New64a()
		h.Write([]byte(s))
		v := h.Sum64()
		v ^= v >> 33
		v *= 0xff51afd7ed558ccd
		v ^= v >> 33
		v *= 0xc4ceb9fe1a85ec53
		v ^= v >> 33
		if got := subjectHash(s); got != v {
			t.Fatalf("subjectHash(%q) = %x, want %x", s, got, v)
		}
	}
}

func TestFilter(t *testing.T) {
	cases := []struct {
		name           string
		n, max         int
		wantSize       int
		wantProbes     byte
		maxFalsePosPct float64
	}{
		{"one", 1, DefaultMaxFilterSize, minFilterSize, 16, 0.5},
		{"100", 100, DefaultMaxFilterSize, filterHeader + 125, 7, 2.5},
		{"10k", 10_000, DefaultMaxFilterSize, filterHeader + 12_500, 7, 1.5},
		{"capped", 10_000, 4 << 10, 4 << 10, 2, 35},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFilter(c.n, c.max)
			if len(f) != c.wantSize || f[0] != filterKind || f[1] != c.wantProbes {
				t.Fatalf("filter of %d bytes, kind %d, %d probes; want %d bytes, %d probes", len(f), f[0], f[1], c.wantSize, c.wantProbes)
			}
			for i := range c.n {
				filterAdd(f, subjectHash(fmt.Sprintf("$KV.B.k.%d", i)))
			}
			for i := range c.n {
				if !FilterMayContain(f, fmt.Sprintf("$KV.B.k.%d", i)) {
					t.Fatalf("false negative for key %d", i)
				}
			}
			fp := 0
			const probes = 20_000
			for i := range probes {
				if FilterMayContain(f, fmt.Sprintf("$KV.B.k.%d", c.n+i)) {
					fp++
				}
			}
			if pct := 100 * float64(fp) / probes; pct > c.maxFalsePosPct {
				t.Fatalf("%.2f%% false positives, want at most %.2f%%", pct, c.maxFalsePosPct)
			}
		})
	}
	for _, f := range [][]byte{nil, {}, {filterKind, 7}, {9, 7, 0, 0}, {filterKind, 0, 0, 0}, {filterKind, maxProbes + 1, 0}} {
		if !FilterMayContain(f, "x") {
			t.Fatalf("unreadable filter %v says no", f)
		}
	}
}

// reseal returns blk with its footer's subject index replaced by section
// (nil: none), the footer's flags set to flags and its checksum redone.
func reseal(t testing.TB, blk []byte, section []byte) []byte {
	t.Helper()
	r, err := OpenBytes(blk)
	if err != nil {
		t.Fatal(err)
	}
	f := r.f
	recLens := make([]uint32, len(f.offs))
	for _, fr := range f.frames {
		for i := fr.first; i < fr.first+fr.count; i++ {
			end := uint32(fr.raw)
			if i+1 < fr.first+fr.count {
				end = f.offs[i+1]
			}
			recLens[i] = end - f.offs[i]
		}
	}
	seqs := make([]uint64, len(f.offs))
	for i := range seqs {
		seqs[i] = f.seqAt(i)
	}
	m := f.meta
	body := blk[:m.Size-int64(r.footerLen)-trailerSize]
	footer := appendFooter(nil, &m, f.frames, seqs, recLens, f.times, section)
	out := append(bytes.Clone(body), footer...)
	return appendTrailer(out, int64(len(body)), len(footer), crc32.Checksum(footer, castagnoli))
}

// sectionOf encodes a subject index from entries already encoded, with the
// restart table given.
func sectionOf(n int, entries []byte, restarts ...uint32) []byte {
	b := binary.AppendUvarint(nil, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	b = append(b, entries...)
	for _, r := range restarts {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	return b
}

// entryOf encodes one entry: items are (seq delta, mark) pairs.
func entryOf(shared int, suffix string, items ...[2]uint64) []byte {
	var list []byte
	for _, it := range items {
		list = binary.AppendUvarint(list, it[0])
		list = append(list, byte(it[1]))
	}
	b := binary.AppendUvarint(nil, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(suffix)))
	b = append(b, suffix...)
	b = binary.AppendUvarint(b, uint64(len(items)))
	b = binary.AppendUvarint(b, uint64(len(list)))
	return append(b, list...)
}

// TestSubjectIndexCorrupt opens blocks whose subject index is well framed
// and checksummed but wrong: each must fail with ErrCorrupt naming an offset
// in the footer, never panic.
func TestSubjectIndexCorrupt(t *testing.T) {
	// Three messages, seqs 1, 2 and 4.
	msgs := []Msg{{Seq: 1, Subject: "a"}, {Seq: 2, Subject: "b"}, {Seq: 4, Subject: "a"}}
	blk, _ := seal(t, Options{Stream: "S", Codec: CodecNone}, msgs)
	a := entryOf(0, "a", [2]uint64{0, 0}, [2]uint64{3, 1})
	b := entryOf(0, "b", [2]uint64{1, 0})
	good := sectionOf(2, append(slices.Clone(a), b...), 0)
	if r, err := OpenBytes(reseal(t, blk, good)); err != nil || !slices.Equal(r.Subject("a"), []Entry{{1, 0}, {4, 1}}) {
		t.Fatalf("hand-made index: %v", err)
	}
	cases := []struct {
		name    string
		section []byte
	}{
		{"empty section", []byte{}},
		{"no subjects", sectionOf(0, nil)},
		{"more subjects than messages", sectionOf(4, append(slices.Clone(a), b...), 0)},
		{"missing restart table", sectionOf(2, append(slices.Clone(a), b...))},
		{"restart elsewhere", sectionOf(2, append(slices.Clone(a), b...), 1)},
		{"unsorted", sectionOf(2, append(slices.Clone(b), a...), 0)},
		{"duplicate subject", sectionOf(2, append(slices.Clone(a), entryOf(0, "a", [2]uint64{1, 0})...), 0)},
		{"shared beyond previous", sectionOf(2, append(slices.Clone(a), entryOf(2, "b", [2]uint64{1, 0})...), 0)},
		{"restart shares", sectionOf(1, entryOf(1, "a", [2]uint64{0, 0}, [2]uint64{1, 0}, [2]uint64{3, 0}), 0)},
		{"seq in a gap", sectionOf(2, append(entryOf(0, "a", [2]uint64{0, 0}, [2]uint64{2, 0}), entryOf(0, "b", [2]uint64{1, 0})...), 0)},
		{"seq past the block", sectionOf(2, append(entryOf(0, "a", [2]uint64{0, 0}, [2]uint64{9, 0}), b...), 0)},
		{"seq listed twice", sectionOf(2, append(slices.Clone(a), entryOf(0, "b", [2]uint64{0, 0})...), 0)},
		{"repeated seq", sectionOf(2, append(entryOf(0, "a", [2]uint64{0, 0}, [2]uint64{0, 0}), b...), 0)},
		{"message missing", sectionOf(2, append(entryOf(0, "a", [2]uint64{0, 0}), b...), 0)},
		{"trailing entry bytes", sectionOf(2, append(append(slices.Clone(a), b...), 0), 0)},
		{"trailing section bytes", append(slices.Clone(good), 0)},
		{"list longer than its items", sectionOf(2, append([]byte{0, 1, 'a', 1, 4, 0, 0, 3, 1}, b...), 0)},
		{"list shorter than its items", sectionOf(2, append([]byte{0, 1, 'a', 2, 3, 0, 0, 3}, b...), 0)},
		{"suffix past the end", sectionOf(1, []byte{0, 9, 'a'}, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := reseal(t, blk, c.section)
			_, err := OpenBytes(bad)
			footerOff := int64(binary.LittleEndian.Uint64(bad[len(bad)-trailerSize:]))
			if off := corruptOffset(t, err, len(bad)); off < footerOff {
				t.Fatalf("error names offset %d, before the footer at %d: %v", off, footerOff, err)
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		bad := reseal(t, blk, nil)
		r, _ := OpenBytes(bad)
		flagAt := len(bad) - trailerSize - r.footerLen
		// The flags byte follows the codec; find it by the known prefix of
		// the footer: stream, seqs, times, count, raw size, codec.
		d := &footerDecoder{b: bad[flagAt:]}
		d.bytes("stream", int(d.uvarint("")))
		for range 2 {
			d.uvarint("")
		}
		d.varint("")
		for range 3 {
			d.uvarint("")
		}
		pos := flagAt + d.pos + 1
		bad[pos] |= 0x80
		footer := bad[flagAt : len(bad)-trailerSize]
		binary.LittleEndian.PutUint32(bad[len(bad)-trailerSize+12:], crc32.Checksum(footer, castagnoli))
		if _, err := OpenBytes(bad); corruptOffset(t, err, len(bad)) != int64(pos) {
			t.Fatalf("unknown flag: %v", err)
		}
	})
}
