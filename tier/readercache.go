package tier

import (
	"container/list"
	"sync"

	"github.com/nats-tiered/nts/block"
)

// readerCache keeps opened block readers (their parsed footers) per tier and
// key, bounded by the footers' bytes, least recently used out first, so a
// read from a cold tier costs one ranged read of one frame. Safe for
// concurrent use.
type readerCache struct {
	mu    sync.Mutex
	max   int64 // bytes of footers
	bytes int64
	order *list.List // of *readerEntry, most recent in front
	byKey map[readerKey]*list.Element
}

type readerKey struct {
	level int
	key   string
}

type readerEntry struct {
	k readerKey
	r *block.Reader
}

func newReaderCache(max int64) *readerCache {
	return &readerCache{max: max, order: list.New(), byKey: map[readerKey]*list.Element{}}
}

func (c *readerCache) get(level int, key string) (*block.Reader, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[readerKey{level, key}]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*readerEntry).r, true
}

func (c *readerCache) put(level int, key string, r *block.Reader) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := readerKey{level, key}
	if e, ok := c.byKey[k]; ok {
		c.removeLocked(e)
	}
	c.byKey[k] = c.order.PushFront(&readerEntry{k, r})
	c.bytes += r.FooterSize()
	for c.bytes > c.max && c.order.Len() > 1 {
		c.removeLocked(c.order.Back())
	}
}

func (c *readerCache) removeLocked(e *list.Element) {
	old := c.order.Remove(e).(*readerEntry)
	delete(c.byKey, old.k)
	c.bytes -= old.r.FooterSize()
}

func (c *readerCache) drop(level int, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[readerKey{level, key}]; ok {
		c.removeLocked(e)
	}
}

// dropAll forgets key in every tier.
func (c *readerCache) dropAll(key string, levels int) {
	for i := range levels {
		c.drop(i, key)
	}
}
