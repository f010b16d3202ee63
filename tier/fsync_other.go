//go:build !linux

package tier

import "os"

// syncFile commits f's data and metadata to stable storage.
func syncFile(f *os.File) error { return f.Sync() }
