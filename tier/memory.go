package tier

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Tier that holds objects in memory, evicting the least recently
// used ones to stay within a bound on total bytes and a bound on the number
// of objects. Get and GetRange count as a use; Stat and List do not.
//
// Memory is safe for concurrent use. Put retains blk: the caller must not
// modify it afterwards. Get and GetRange return the stored bytes themselves
// (capacity trimmed, so an append copies): callers must not modify them.
type Memory struct {
	maxBytes  int64
	maxBlocks int
	onEvict   func(key string)

	mu    sync.Mutex
	lru   *list.List // of *memEntry, most recently used at the front
	items map[string]*list.Element
	bytes int64 // sum of len(blk) over items
}

// memEntry is one object held by a Memory store.
type memEntry struct {
	key string
	blk []byte
	mod time.Time
}

var _ Tier = (*Memory)(nil)

// MemoryOption configures a Memory store.
type MemoryOption func(*Memory)

// OnEvict sets a function called with the key of each object the store
// evicts to stay within its bounds (not for Delete or an overwrite). It is
// called after the store's lock is released, on the goroutine whose Put
// caused the eviction, so it may call the store; calls from concurrent Puts
// may interleave.
func OnEvict(fn func(key string)) MemoryOption {
	return func(m *Memory) { m.onEvict = fn }
}

// NewMemory returns an empty Memory store holding at most maxBytes bytes and
// at most maxBlocks objects. A bound of 0 or less leaves that dimension
// unbounded.
func NewMemory(maxBytes int64, maxBlocks int, opts ...MemoryOption) *Memory {
	m := &Memory{
		maxBytes:  max(maxBytes, 0),
		maxBlocks: max(maxBlocks, 0),
		lru:       list.New(),
		items:     make(map[string]*list.Element),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Name returns "memory".
func (m *Memory) Name() string { return "memory" }

// Len returns the number of objects held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Bytes returns the total size of the objects held.
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// Put stores blk under key as the most recently used object, evicting the
// least recently used others until the store is within its bounds. An object
// larger than the byte bound is refused with an error wrapping ErrTooLarge,
// leaving the store unchanged.
func (m *Memory) Put(ctx context.Context, key string, blk []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory put %q: %w", key, err)
	}
	size := int64(len(blk))
	if m.maxBytes > 0 && size > m.maxBytes {
		return fmt.Errorf("memory put %q: %w: %d bytes, bound %d", key, ErrTooLarge, size, m.maxBytes)
	}
	now := time.Now()
	m.mu.Lock()
	if el, ok := m.items[key]; ok {
		e := el.Value.(*memEntry)
		m.bytes += size - int64(len(e.blk))
		e.blk, e.mod = blk, now
		m.lru.MoveToFront(el)
	} else {
		m.items[key] = m.lru.PushFront(&memEntry{key: key, blk: blk, mod: now})
		m.bytes += size
	}
	evicted := m.evictLocked()
	m.mu.Unlock()
	if m.onEvict != nil {
		for _, k := range evicted {
			m.onEvict(k)
		}
	}
	return nil
}

// evictLocked removes least recently used objects, never the most recent
// one, until the store is within its bounds, and returns their keys.
// m.mu must be held.
func (m *Memory) evictLocked() []string {
	var evicted []string
	for (m.maxBytes > 0 && m.bytes > m.maxBytes) || (m.maxBlocks > 0 && m.lru.Len() > m.maxBlocks) {
		el := m.lru.Back()
		if el == m.lru.Front() {
			break
		}
		e := m.removeLocked(el)
		evicted = append(evicted, e.key)
	}
	return evicted
}

// removeLocked drops one element and its accounting. m.mu must be held.
func (m *Memory) removeLocked(el *list.Element) *memEntry {
	e := m.lru.Remove(el).(*memEntry)
	delete(m.items, e.key)
	m.bytes -= int64(len(e.blk))
	return e
}

// use looks up key and marks it most recently used. m.mu must not be held.
func (m *Memory) use(ctx context.Context, op, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory %s %q: %w", op, key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, fmt.Errorf("memory %s %q: %w", op, key, ErrNotFound)
	}
	m.lru.MoveToFront(el)
	return el.Value.(*memEntry).blk, nil
}

// Get returns the stored object itself; the caller must not modify it.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	blk, err := m.use(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return blk[:len(blk):len(blk)], nil
}

// GetRange returns n bytes at off, sharing the stored object's memory; the
// caller must not modify them.
func (m *Memory) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := checkRange(off, n); err != nil {
		return nil, fmt.Errorf("memory get range %q: %w", key, err)
	}
	blk, err := m.use(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	if err := checkRangeSize(off, n, int64(len(blk))); err != nil {
		return nil, fmt.Errorf("memory get range %q: %w", key, err)
	}
	return blk[off : off+n : off+n], nil
}

// Stat returns the object's size and the time it was put.
func (m *Memory) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("memory stat %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return Info{}, fmt.Errorf("memory stat %q: %w", key, ErrNotFound)
	}
	e := el.Value.(*memEntry)
	return Info{Key: key, Size: int64(len(e.blk)), ModTime: e.mod}, nil
}

// Delete drops the object. A missing object is not an error.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory delete %q: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.removeLocked(el)
	}
	return nil
}

// List returns the objects whose keys begin with prefix, sorted by key.
func (m *Memory) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory list %q: %w", prefix, err)
	}
	var out []Info
	m.mu.Lock()
	for key, el := range m.items {
		if strings.HasPrefix(key, prefix) {
			e := el.Value.(*memEntry)
			out = append(out, Info{Key: key, Size: int64(len(e.blk)), ModTime: e.mod})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
