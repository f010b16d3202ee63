package index

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// newView returns an Index with only its view, holding blocks.
func newView(blocks ...BlockMeta) *Index {
	ix := &Index{}
	ix.view.init()
	for _, m := range blocks {
		ix.view.putBlock(m)
	}
	return ix
}

func TestLookup(t *testing.T) {
	// Blocks 10-19, 20-29, a gap 30-39, 40-40, 41-60.
	ix := newView(meta("S", 20, 29), meta("S", 10, 19), meta("S", 41, 60), meta("S", 40, 40))
	tests := []struct {
		seq       uint64
		wantFirst uint64 // 0: no block
	}{
		{0, 0}, {1, 0}, {9, 0},
		{10, 10}, {15, 10}, {19, 10},
		{20, 20}, {29, 20},
		{30, 0}, {35, 0}, {39, 0},
		{40, 40},
		{41, 41}, {60, 41},
		{61, 0}, {1 << 63, 0}, {^uint64(0), 0},
	}
	for _, tt := range tests {
		m, ok := ix.Lookup("S", tt.seq)
		if ok != (tt.wantFirst != 0) || m.FirstSeq != tt.wantFirst {
			t.Errorf("Lookup(%d) = first %d, %v; want first %d", tt.seq, m.FirstSeq, ok, tt.wantFirst)
		}
	}
	if _, ok := ix.Lookup("T", 15); ok {
		t.Errorf("Lookup in an unknown stream found a block")
	}
}

func TestLookupTime(t *testing.T) {
	// meta puts seq n at unix time 1e9+n seconds.
	ix := newView(meta("S", 10, 19), meta("S", 20, 29), meta("S", 41, 60))
	at := func(seq uint64) time.Time { return time.Unix(int64(1e9+seq), 0) }
	tests := []struct {
		name      string
		t         time.Time
		wantFirst uint64
	}{
		{"long before", time.Unix(0, 0), 10},
		{"first message", at(10), 10},
		{"inside first", at(15), 10},
		{"last of first", at(19), 10},
		{"just after first", at(19).Add(time.Nanosecond), 20},
		{"in the gap", at(35), 41},
		{"last message", at(60), 41},
		{"after the last", at(60).Add(time.Nanosecond), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := ix.LookupTime("S", tt.t)
			if ok != (tt.wantFirst != 0) || m.FirstSeq != tt.wantFirst {
				t.Errorf("LookupTime = first %d, %v; want first %d", m.FirstSeq, ok, tt.wantFirst)
			}
		})
	}
	if _, ok := ix.LookupTime("T", at(15)); ok {
		t.Errorf("LookupTime in an unknown stream found a block")
	}
}

func TestBlocksPaging(t *testing.T) {
	var blocks []BlockMeta
	for i := range uint64(10) {
		blocks = append(blocks, meta("S", 1+i*10, 5+i*10)) // 1-5, 11-15, ..., 91-95
	}
	ix := newView(blocks...)
	firsts := func(bs []BlockMeta) []uint64 {
		var out []uint64
		for _, b := range bs {
			out = append(out, b.FirstSeq)
		}
		return out
	}
	tests := []struct {
		from  uint64
		limit int
		want  []uint64
	}{
		{0, 3, []uint64{1, 11, 21}},
		{1, 2, []uint64{1, 11}},
		{5, 2, []uint64{1, 11}},  // holding
		{6, 2, []uint64{11, 21}}, // in a gap: the next block
		{86, 0, []uint64{91}},    // gap before the last
		{93, 10, []uint64{91}},   // inside the last
		{96, 10, nil},            // past the end
		{0, 0, firsts(blocks)},   // everything
		{31, -1, firsts(blocks[3:])},
	}
	for _, tt := range tests {
		if got := firsts(ix.Blocks("S", tt.from, tt.limit)); !slices.Equal(got, tt.want) {
			t.Errorf("Blocks(from %d, limit %d) = %v; want %v", tt.from, tt.limit, got, tt.want)
		}
	}
	// Paging through from the end of each page visits every block once.
	var all []uint64
	for from := uint64(0); ; {
		page := ix.Blocks("S", from, 3)
		if len(page) == 0 {
			break
		}
		all = append(all, firsts(page)...)
		from = page[len(page)-1].LastSeq + 1
	}
	if !slices.Equal(all, firsts(blocks)) {
		t.Errorf("paging visited %v", all)
	}
	// The page is the caller's.
	page := ix.Blocks("S", 0, 1)
	page[0].FirstSeq = 999
	if m, _ := ix.Lookup("S", 1); m.FirstSeq != 1 {
		t.Errorf("changing a page changed the view")
	}
}

func TestViewOutOfOrderAndDeletes(t *testing.T) {
	const n = 500
	order := rand.Perm(n)
	ix := newView()
	for _, i := range order {
		ix.view.putBlock(meta("S", uint64(i*10+1), uint64(i*10+10)))
	}
	check := func(present func(i int) bool) {
		t.Helper()
		s := ix.view.streams["S"]
		if !slices.IsSortedFunc(s.blocks, func(a, b BlockMeta) int { return int(a.FirstSeq) - int(b.FirstSeq) }) {
			t.Fatalf("blocks not sorted")
		}
		var count int
		var msgs uint64
		for i := range n {
			m, ok := ix.Lookup("S", uint64(i*10+5))
			if ok != present(i) || ok && m.FirstSeq != uint64(i*10+1) {
				t.Fatalf("Lookup block %d = %+v, %v; want present %v", i, m, ok, present(i))
			}
			if ok {
				count++
				msgs += 10
			}
		}
		sum, _ := ix.Stream("S")
		if sum.Blocks != count || sum.Msgs != msgs || sum.Bytes != int64(count)*400 ||
			sum.Tiers["file"] != (TierUsage{Blocks: count, Bytes: int64(count) * 400}) {
			t.Fatalf("summary = %+v; want %d blocks", sum, count)
		}
	}
	check(func(int) bool { return true })

	// Replacing an entry replaces, and moves the totals.
	m := meta("S", 11, 20)
	m.Tiers = []string{"blob"}
	ix.view.putBlock(m)
	if sum, _ := ix.Stream("S"); sum.Blocks != n || sum.Tiers["blob"].Blocks != n || sum.Tiers["file"].Blocks != n-1 {
		t.Fatalf("after replace: %+v", sum.Tiers)
	}
	ix.view.putBlock(meta("S", 11, 20))

	// Expiry from the front, then deletes in the middle, in random order.
	for i := range 100 {
		ix.view.deleteBlock("S", uint64(i*10+1))
	}
	check(func(i int) bool { return i >= 100 })
	mid := rand.Perm(n - 100)
	for _, j := range mid[:200] {
		ix.view.deleteBlock("S", uint64((j+100)*10+1))
	}
	deleted := make(map[int]bool)
	for _, j := range mid[:200] {
		deleted[j+100] = true
	}
	check(func(i int) bool { return i >= 100 && !deleted[i] })
	ix.view.deleteBlock("S", 5) // not a block's first: nothing happens
	ix.view.deleteBlock("T", 1)
	for _, j := range mid[200:] {
		ix.view.deleteBlock("S", uint64((j+100)*10+1))
	}
	if _, ok := ix.Stream("S"); ok {
		t.Fatalf("a stream without blocks or head is still listed")
	}
}

func TestViewInternsTiers(t *testing.T) {
	a, b := meta("S", 1, 10), meta("S", 11, 20)
	ix := newView(a, b)
	x, _ := ix.Block("S", 1)
	y, _ := ix.Block("S", 11)
	if &x.Tiers[0] != &y.Tiers[0] {
		t.Errorf("equal tier lists are not shared")
	}
	a.Tiers[0] = "changed" // the caller's slice is not the view's
	if x, _ := ix.Block("S", 1); x.Tiers[0] != "memory" {
		t.Errorf("view shares the caller's tier slice")
	}
}

func TestStreamsSummary(t *testing.T) {
	ix := newView(meta("B", 5, 9), meta("A", 1, 10), meta("A", 11, 30))
	ix.view.putHead(Head{Stream: "C", LastSeq: 7, Block: meta("C", 1, 7), Leader: "r"}, 3)
	got := ix.Streams()
	if len(got) != 3 || got[0].Stream != "A" || got[1].Stream != "B" || got[2].Stream != "C" {
		t.Fatalf("Streams = %+v", got)
	}
	a := got[0]
	want := StreamSummary{
		Stream: "A", Blocks: 2, Msgs: 30, FirstSeq: 1, LastSeq: 30,
		FirstTime: meta("A", 1, 1).FirstTime, LastTime: meta("A", 30, 30).LastTime,
		RawBytes: 3000, Bytes: 1200,
	}
	a.Tiers, a.Head = nil, nil
	if !reflect.DeepEqual(a, want) {
		t.Errorf("summary of A = %+v; want %+v", a, want)
	}
	if c := got[2]; c.Blocks != 0 || c.Head == nil || c.Head.Leader != "r" || c.Head.LastSeq != 7 {
		t.Errorf("summary of C = %+v", c)
	}
	// The summary's map is the caller's.
	got[0].Tiers["file"] = TierUsage{}
	if a, _ := ix.Stream("A"); a.Tiers["file"].Blocks != 2 {
		t.Errorf("changing a summary changed the view")
	}
	ix.view.deleteHead("C")
	if _, ok := ix.Stream("C"); ok {
		t.Errorf("stream C listed after its head was deleted")
	}
}

func TestWaitFor(t *testing.T) {
	ix := newView(meta("S", 1, 10))
	ctx := testCtx(t, 10*time.Second)
	if err := ix.WaitFor(ctx, "S", 10); err != nil {
		t.Fatalf("WaitFor a present seq: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- ix.WaitFor(ctx, "S", 25) }()
	ix.view.putBlock(meta("S", 11, 20)) // not enough
	select {
	case err := <-done:
		t.Fatalf("WaitFor(25) returned %v with 20 sealed", err)
	case <-time.After(50 * time.Millisecond):
	}
	ix.view.putBlock(meta("S", 21, 30))
	if err := <-done; err != nil {
		t.Fatalf("WaitFor(25): %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := ix.WaitFor(short, "S", 99); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor past its deadline: %v", err)
	}
	go func() { done <- ix.WaitFor(ctx, "S", 99) }()
	ix.view.stop()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitFor on a stopped view: %v; want ErrClosed", err)
	}
	if err := ix.WaitFor(ctx, "a.b", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("WaitFor on an invalid stream: %v; want ErrInvalid", err)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	var blocks []BlockMeta
	for i := range uint64(1000) {
		blocks = append(blocks, meta("S", i*10+1, i*10+9))
	}
	ix := newView(blocks...)
	ts := time.Unix(int64(1e9+5000), 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := ix.Lookup("S", 5005); !ok {
			t.Fatal("miss")
		}
		if _, ok := ix.Lookup("S", 5000); ok { // a gap
			t.Fatal("hit in a gap")
		}
		if _, ok := ix.LookupTime("S", ts); !ok {
			t.Fatal("miss")
		}
		if _, ok := ix.Block("S", 5001); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Errorf("lookups allocate %.1f times", allocs)
	}
}

func TestViewBulkLoad(t *testing.T) {
	const n = 300
	r := rand.New(rand.NewPCG(5, 6))
	var ops []func(v *view)
	live := make(map[uint64]BlockMeta)
	for _, i := range r.Perm(n) {
		m := meta("S", uint64(i*10+1), uint64(i*10+10))
		ops = append(ops, func(v *view) { v.putBlock(m) })
		live[m.FirstSeq] = m
		switch r.IntN(4) {
		case 0: // a later entry for the same key
			m2 := m
			m2.Tiers = []string{"blob"}
			ops = append(ops, func(v *view) { v.putBlock(m2) })
			live[m.FirstSeq] = m2
		case 1: // deleted while loading
			ops = append(ops, func(v *view) { v.deleteBlock("S", m.FirstSeq) })
			delete(live, m.FirstSeq)
		}
	}
	ops = append(ops, func(v *view) { v.putHead(Head{Stream: "H", LastSeq: 1, Block: meta("H", 1, 1)}, 7) })
	ops = append(ops, func(v *view) { v.putBlock(meta("gone", 1, 2)); v.deleteBlock("gone", 1) })

	bulk, inPlace := newView(), newView()
	bulk.view.startLoad()
	for _, op := range ops {
		op(&bulk.view)
		op(&inPlace.view)
	}
	bulk.view.finishLoad()
	got, want := bulk.Blocks("S", 0, 0), inPlace.Blocks("S", 0, 0)
	if len(got) != len(live) || !slices.EqualFunc(got, want, func(a, b BlockMeta) bool { return a.Equal(&b) }) {
		t.Fatalf("bulk load holds %d blocks, in-place %d, want %d", len(got), len(want), len(live))
	}
	for _, m := range got {
		if w := live[m.FirstSeq]; !m.Equal(&w) {
			t.Fatalf("block %d = %+v; want %+v", m.FirstSeq, m, w)
		}
	}
	if !reflect.DeepEqual(bulk.Streams(), inPlace.Streams()) {
		t.Fatalf("summaries differ:\n%+v\n%+v", bulk.Streams(), inPlace.Streams())
	}
	if len(bulk.Streams()) != 2 {
		t.Fatalf("streams = %+v; want S and H", bulk.Streams())
	}
}

// TestSelectAndStreamNames checks Select keeps the blocks its test accepts,
// in sequence order, and StreamNames lists every stream of the view.
func TestSelectAndStreamNames(t *testing.T) {
	var blocks []BlockMeta
	for i := range 6 {
		m := meta("S", uint64(i*10+1), uint64(i*10+10))
		m.Filter = []byte{byte(i)}
		blocks = append(blocks, m)
	}
	ix := newView(append(blocks, meta("T", 1, 5))...)
	got := ix.Select("S", func(b *BlockMeta) bool { return b.Filter[0]%2 == 1 })
	if len(got) != 3 || got[0].FirstSeq != 11 || got[1].FirstSeq != 31 || got[2].FirstSeq != 51 {
		t.Fatalf("Select: %+v", got)
	}
	if ix.Select("NONE", func(*BlockMeta) bool { return true }) != nil {
		t.Fatal("Select of an unknown stream returned blocks")
	}
	names := ix.StreamNames()
	slices.Sort(names)
	if !slices.Equal(names, []string{"S", "T"}) {
		t.Fatalf("StreamNames: %v", names)
	}
}
