//go:build !linux

package tier

import "os"

// syncFile commits f's data and metadata to stable storage.
func syncFile(f *os.File) error { return f.Sync() }

// writeDurable writes blk to tmp, a file just created and empty, and commits
// it to stable storage.
func (f *File) writeDurable(tmp *os.File, blk []byte) error { return writeBuffered(tmp, blk) }
