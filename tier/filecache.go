package tier

import (
	"container/list"
	"os"
	"sync"
)

// maxOpenFiles bounds the handles a File store keeps open for reads.
const maxOpenFiles = 128

// openFiles keeps open handles of the objects a File store read recently,
// at most max, the least recently used closed first (as pebble keeps open
// sstables in its table cache), so that a read costs a stat of the open
// file and one positioned read rather than an open, a stat, the read and a
// close. The store checks a kept handle is current before each read and
// forgets a key when it puts or deletes it. Safe for concurrent use.
type openFiles struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *openFile, most recently used in front
	byKey map[string]*list.Element
}

// openFile is one kept handle. Its fields but refs are set before it is
// shared and not changed after.
type openFile struct {
	key  string
	path string
	fh   *os.File
	fi   os.FileInfo // of fh when opened
	refs int         // readers using it, plus one while kept (under openFiles.mu)
}

func newOpenFiles(max int) *openFiles {
	return &openFiles{max: max, lru: list.New(), byKey: map[string]*list.Element{}}
}

// acquire returns the kept handle of key, which the caller must release,
// or nil.
func (c *openFiles) acquire(key string) *openFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	of := e.Value.(*openFile)
	of.refs++
	return of
}

// keep keeps of, which the caller has open and must release, for later
// reads. A handle kept for key meanwhile is replaced.
func (c *openFiles) keep(of *openFile) {
	var closing []*os.File
	c.mu.Lock()
	of.refs++ // the cache's reference
	if e, ok := c.byKey[of.key]; ok {
		closing = c.dropLocked(e, closing)
	}
	c.byKey[of.key] = c.lru.PushFront(of)
	for c.lru.Len() > c.max {
		closing = c.dropLocked(c.lru.Back(), closing)
	}
	c.mu.Unlock()
	closeAll(closing)
}

// release ends a reader's use of of, closing it if it is no longer kept
// and no other reader uses it.
func (c *openFiles) release(of *openFile) {
	c.mu.Lock()
	of.refs--
	last := of.refs == 0
	c.mu.Unlock()
	if last {
		_ = of.fh.Close() // read-only: nothing to flush
	}
}

// forget stops keeping key's handle; it is closed once its readers are done.
func (c *openFiles) forget(key string) {
	var closing []*os.File
	c.mu.Lock()
	if e, ok := c.byKey[key]; ok {
		closing = c.dropLocked(e, closing)
	}
	c.mu.Unlock()
	closeAll(closing)
}

// dropLocked removes e and drops the cache's reference, appending its file
// to closing when no reader uses it. c.mu must be held.
func (c *openFiles) dropLocked(e *list.Element, closing []*os.File) []*os.File {
	of := c.lru.Remove(e).(*openFile)
	delete(c.byKey, of.key)
	if of.refs--; of.refs == 0 {
		closing = append(closing, of.fh)
	}
	return closing
}

func closeAll(files []*os.File) {
	for _, fh := range files {
		_ = fh.Close() // read-only: nothing to flush
	}
}
