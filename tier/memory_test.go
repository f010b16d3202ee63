package tier_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/tiertest"
)

func TestMemoryConformance(t *testing.T) {
	tiertest.Run(t, func(t *testing.T) tier.Tier {
		return tier.NewMemory(2*tiertest.LargeSize, 1000)
	})
}

func TestMemoryConformanceUnbounded(t *testing.T) {
	tiertest.Run(t, func(t *testing.T) tier.Tier { return tier.NewMemory(0, 0) })
}

// evictLog records OnEvict calls.
type evictLog struct {
	mu   sync.Mutex
	keys []string
}

func (l *evictLog) add(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
}

func (l *evictLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys
	l.keys = nil
	return k
}

// memOp is one step of an eviction scenario: put size bytes under key, or,
// when size is opGet, opGetRange or opDelete, do that to key.
type memOp struct {
	key  string
	size int
}

const (
	opGet      = -1
	opGetRange = -2
	opDelete   = -3
)

func TestMemoryEviction(t *testing.T) {
	cases := []struct {
		name      string
		maxBytes  int64
		maxBlocks int
		ops       []memOp
		evicted   []string // in order
		held      []string // sorted
		bytes     int64
	}{
		{
			name: "bytes, oldest first", maxBytes: 100,
			ops:     []memOp{{"a", 40}, {"b", 40}, {"c", 40}, {"d", 40}},
			evicted: []string{"a", "b"}, held: []string{"c", "d"}, bytes: 80,
		},
		{
			name: "bytes, Get marks use", maxBytes: 100,
			ops:     []memOp{{"a", 40}, {"b", 40}, {"a", opGet}, {"c", 40}},
			evicted: []string{"b"}, held: []string{"a", "c"}, bytes: 80,
		},
		{
			name: "bytes, GetRange marks use", maxBytes: 100,
			ops:     []memOp{{"a", 40}, {"b", 40}, {"a", opGetRange}, {"c", 40}},
			evicted: []string{"b"}, held: []string{"a", "c"}, bytes: 80,
		},
		{
			name: "bytes, one large object evicts several", maxBytes: 100,
			ops:     []memOp{{"a", 30}, {"b", 30}, {"c", 30}, {"d", 90}},
			evicted: []string{"a", "b", "c"}, held: []string{"d"}, bytes: 90,
		},
		{
			name: "bytes, object exactly the bound", maxBytes: 100,
			ops:     []memOp{{"a", 1}, {"b", 100}},
			evicted: []string{"a"}, held: []string{"b"}, bytes: 100,
		},
		{
			name: "bytes, growing overwrite evicts others", maxBytes: 100,
			ops:     []memOp{{"a", 40}, {"b", 40}, {"b", 70}},
			evicted: []string{"a"}, held: []string{"b"}, bytes: 70,
		},
		{
			name: "bytes, shrinking overwrite re-accounts", maxBytes: 100,
			ops:     []memOp{{"a", 60}, {"a", 10}, {"b", 90}},
			evicted: nil, held: []string{"a", "b"}, bytes: 100,
		},
		{
			name: "bytes, delete frees room", maxBytes: 100,
			ops:     []memOp{{"a", 60}, {"b", 30}, {"a", opDelete}, {"c", 70}},
			evicted: nil, held: []string{"b", "c"}, bytes: 100,
		},
		{
			name: "count, oldest first", maxBlocks: 2,
			ops:     []memOp{{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}},
			evicted: []string{"a", "b"}, held: []string{"c", "d"}, bytes: 2,
		},
		{
			name: "count, Get marks use", maxBlocks: 2,
			ops:     []memOp{{"a", 1}, {"b", 1}, {"a", opGet}, {"c", 1}},
			evicted: []string{"b"}, held: []string{"a", "c"}, bytes: 2,
		},
		{
			name: "count, overwrite is not a new object", maxBlocks: 2,
			ops:     []memOp{{"a", 1}, {"b", 1}, {"a", 5}, {"b", 7}},
			evicted: nil, held: []string{"a", "b"}, bytes: 12,
		},
		{
			name: "both bounds, bytes bind", maxBytes: 10, maxBlocks: 5,
			ops:     []memOp{{"a", 4}, {"b", 4}, {"c", 4}},
			evicted: []string{"a"}, held: []string{"b", "c"}, bytes: 8,
		},
		{
			name: "both bounds, count binds", maxBytes: 100, maxBlocks: 2,
			ops:     []memOp{{"a", 4}, {"b", 4}, {"c", 4}},
			evicted: []string{"a"}, held: []string{"b", "c"}, bytes: 8,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log evictLog
			m := tier.NewMemory(c.maxBytes, c.maxBlocks, tier.OnEvict(log.add))
			for _, op := range c.ops {
				var err error
				switch op.size {
				case opGet:
					_, err = m.Get(t.Context(), op.key)
				case opGetRange:
					_, err = m.GetRange(t.Context(), op.key, 0, 1)
				case opDelete:
					err = m.Delete(t.Context(), op.key)
				default:
					err = m.Put(t.Context(), op.key, bytes.Repeat([]byte{'x'}, op.size))
				}
				if err != nil {
					t.Fatalf("%+v: %v", op, err)
				}
			}
			if got := log.take(); !slices.Equal(got, c.evicted) {
				t.Errorf("evicted %q, want %q", got, c.evicted)
			}
			infos, err := m.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			var held []string
			var sum int64
			for _, in := range infos {
				held = append(held, in.Key)
				sum += in.Size
			}
			if !slices.Equal(held, c.held) {
				t.Errorf("holds %q, want %q", held, c.held)
			}
			if m.Len() != len(c.held) || m.Bytes() != c.bytes || sum != c.bytes {
				t.Errorf("Len() = %d, Bytes() = %d, listed bytes %d; want %d, %d", m.Len(), m.Bytes(), sum, len(c.held), c.bytes)
			}
		})
	}
}

func TestMemoryTooLarge(t *testing.T) {
	var log evictLog
	m := tier.NewMemory(100, 0, tier.OnEvict(log.add))
	ctx := t.Context()
	if err := m.Put(ctx, "a", []byte("keep")); err != nil {
		t.Fatal(err)
	}
	err := m.Put(ctx, "big", make([]byte, 101))
	if !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Put of 101 bytes into a 100-byte store: %v, want ErrTooLarge", err)
	}
	// An overwrite that is too large leaves the old object in place.
	if err := m.Put(ctx, "a", make([]byte, 101)); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("overwrite with 101 bytes: %v, want ErrTooLarge", err)
	}
	got, err := m.Get(ctx, "a")
	if err != nil || string(got) != "keep" {
		t.Fatalf("Get(a) = %q, %v; want the object put before", got, err)
	}
	if m.Len() != 1 || m.Bytes() != 4 || len(log.take()) != 0 {
		t.Fatalf("Len() = %d, Bytes() = %d after refused puts, want 1, 4 and no evictions", m.Len(), m.Bytes())
	}
}

// TestMemoryOnEvictReenters checks OnEvict runs without the store's lock
// held: the hook reads the store.
func TestMemoryOnEvictReenters(t *testing.T) {
	var m *tier.Memory
	var seen []int
	m = tier.NewMemory(0, 1, tier.OnEvict(func(key string) {
		seen = append(seen, m.Len())
		if _, err := m.Stat(t.Context(), key); !errors.Is(err, tier.ErrNotFound) {
			t.Errorf("Stat(%q) in OnEvict: %v, want ErrNotFound", key, err)
		}
	}))
	for _, k := range []string{"a", "b", "c"} {
		if err := m.Put(t.Context(), k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(seen, []int{1, 1}) {
		t.Fatalf("OnEvict saw Len() %v, want [1 1]", seen)
	}
}

// TestMemoryConcurrentEviction fills a small store from many goroutines and
// checks the bounds hold and every eviction is reported once.
func TestMemoryConcurrentEviction(t *testing.T) {
	const workers, puts, size = 8, 200, 100
	var log evictLog
	m := tier.NewMemory(10*size, 7, tier.OnEvict(log.add))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range puts {
				key := strings.Repeat(string(rune('a'+w)), 3) + "/" + string(rune('A'+i%26)) + string(rune('A'+i/26))
				if err := m.Put(t.Context(), key, make([]byte, size)); err != nil {
					t.Error(err)
					return
				}
				if n, b := m.Len(), m.Bytes(); n > 7 || b > 10*size {
					t.Errorf("Len() = %d, Bytes() = %d: over the bounds 7, %d", n, b, 10*size)
					return
				}
			}
		})
	}
	wg.Wait()
	evicted := log.take()
	if got, want := len(evicted)+m.Len(), workers*puts; got != want {
		t.Fatalf("%d evicted + %d held = %d, want %d puts of distinct keys", len(evicted), m.Len(), got, want)
	}
	if m.Len() != 7 || m.Bytes() != 7*size {
		t.Fatalf("Len() = %d, Bytes() = %d, want 7, %d", m.Len(), m.Bytes(), 7*size)
	}
}

// TestMemorySharesBuffers documents that Get returns the stored bytes with
// their capacity trimmed, so appending to them cannot change the store.
func TestMemorySharesBuffers(t *testing.T) {
	m := tier.NewMemory(0, 0)
	blk := make([]byte, 4, 16)
	copy(blk, "abcd")
	if err := m.Put(t.Context(), "k", blk); err != nil {
		t.Fatal(err)
	}
	got, err := m.GetRange(t.Context(), "k", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got, 'X')
	all, err := m.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(all) != "abcd" || cap(all) != 4 || cap(got) != 2 {
		t.Fatalf("after append to a range: object %q cap %d, range cap %d; want \"abcd\" cap 4, range cap 2", all, cap(all), cap(got))
	}
}
