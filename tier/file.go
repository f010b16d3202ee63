package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// errNotDirSyscall is the error a path lookup gives when a file stands where
// a directory would be ("a/b" when "a" is an object): the key is not held.
var errNotDirSyscall error = syscall.ENOTDIR

// TempPrefix begins the name of a file the File store is still writing. Key
// segments may not begin with it, so a partial write never looks like an
// object and leftovers from a crash can be told apart and removed.
const TempPrefix = ".tmp-"

// maxKeyLen is the longest key accepted: S3's limit on an object key.
const maxKeyLen = 1024

// maxSegmentLen is the longest key segment accepted: a file name's limit on
// common file systems.
const maxSegmentLen = 255

// ValidateKey reports whether key may reach a file path or an object key: one
// or more segments separated by '/', each non-empty, not "." or "..", at most
// 255 bytes, valid UTF-8 without control characters or '\\', and not
// beginning with TempPrefix; at most 1024 bytes in all. Keys made by Key
// pass when the stream name is valid UTF-8 without C1 control characters
// (ValidateStream allows any byte above 0x7f). It returns an error wrapping
// ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: key longer than %d bytes", ErrInvalidKey, maxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validateSegment(seg); err != nil {
			return fmt.Errorf("%w: key %q: %s", ErrInvalidKey, key, err)
		}
	}
	return nil
}

// validateSegment checks one '/'-separated part of a key. Its error is a bare
// reason; ValidateKey wraps it.
func validateSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty segment (leading, trailing or doubled '/')")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q", seg)
	case len(seg) > maxSegmentLen:
		return fmt.Errorf("segment longer than %d bytes", maxSegmentLen)
	case strings.HasPrefix(seg, TempPrefix):
		return fmt.Errorf("segment begins with the reserved %q", TempPrefix)
	}
	return checkRunes(seg)
}

// checkRunes rejects control characters (C0, DEL, C1) and '\\'.
func checkRunes(s string) error {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("segment has %q", r)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix may be passed to List: every complete
// segment (before the last '/') must be a valid key segment, and the partial
// last segment, which is only compared with keys and never used as a path,
// must be valid UTF-8 without control characters or '\\'. An empty prefix is
// valid. It returns an error wrapping ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if !utf8.ValidString(prefix) {
		return fmt.Errorf("%w: list prefix %q is not valid UTF-8", ErrInvalidKey, prefix)
	}
	last := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if err := ValidateKey(prefix[:i]); err != nil {
			return fmt.Errorf("list prefix %q: %w", prefix, err)
		}
		last = prefix[i+1:]
	}
	if err := checkRunes(last); err != nil {
		return fmt.Errorf("%w: list prefix %q: %s", ErrInvalidKey, prefix, err)
	}
	return nil
}

// File is a Tier that keeps one file per object under a directory: key
// "S/x.blk" is the file <dir>/S/x.blk, so each stream has a subdirectory.
// Writes are durable and atomic: the object is written to a temporary file in
// the same directory, fsynced, renamed over the target, and the directory is
// fsynced. A key cannot be both an object and a directory of other objects
// ("a" and "a/b"); putting the second fails. On Linux the fsyncs, and the
// writes of a store that writes around the page cache (WriteAround), wait
// through asynchronous I/O, so that a goroutine waiting on the disk does not
// hold one of the runtime's Ps (see syncFile and writeDurable).
//
// Reads keep the handles of recently read files open (see openFiles): a
// read costs a stat of the open file and one positioned read.
//
// File is safe for concurrent use. Buffers returned by Get and GetRange are
// the caller's; Put does not retain blk, nor change it.
type File struct {
	dir   string
	files *openFiles
	// around: objects are written around the page cache (WriteAround);
	// buffered is set once the file system has refused it, and objects go
	// through the page cache from then on (see writeDurable).
	around   bool
	buffered atomic.Bool
}

var (
	_ Tier      = (*File)(nil)
	_ RangeInto = (*File)(nil)
)

// FileOption configures a File store.
type FileOption func(*File)

// WriteAround makes a File store write the whole pages of each object around
// the page cache, straight from the caller's buffer (O_DIRECT, on Linux;
// elsewhere the option changes nothing), for a store whose objects are
// seldom read soon after they are written: the dir:// blob tier, which the
// memory and file tiers in front of it shield from reads. Such a write costs
// a fraction of the CPU of one through the page cache, but a read soon after
// it goes to the disk, where it would have found the pages cached: the file
// tier, which serves the reads the memory tier cannot, writes through the
// page cache (see writeDurable).
func WriteAround() FileOption { return func(f *File) { f.around = true } }

// NewFile returns a File store rooted at dir, creating dir if needed and
// removing temporary files left by writes that a crash interrupted.
func NewFile(dir string, opts ...FileOption) (*File, error) {
	if dir == "" {
		return nil, errors.New("file tier: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file tier: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("file tier: %w", err)
	}
	f := &File{dir: abs, files: newOpenFiles(maxOpenFiles)}
	for _, o := range opts {
		o(f)
	}
	if _, err := f.RemoveTemp(StaleTemp); err != nil {
		return nil, fmt.Errorf("file tier: removing partial writes: %w", err)
	}
	return f, nil
}

// StaleTemp is how long a temporary file must have gone unmodified before
// RemoveTemp takes it for a crash's leftover. A younger one may be a write
// in progress: of this process, or of another store on the same directory
// (a second process given the same data directory, replicas sharing a
// dir:// blob directory, a tool reading the archive).
const StaleTemp = 10 * time.Minute

// RemoveTemp deletes the temporary files under the store's directory that
// were last modified more than olderThan ago, and returns how many it
// deleted. NewFile calls it with StaleTemp; the leftovers of a crash that
// were younger then are for a later call.
func (f *File) RemoveTemp(olderThan time.Duration) (int, error) {
	n := 0
	now := time.Now()
	err := filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), TempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed or removed meanwhile
		}
		if err != nil {
			return err
		}
		if now.Sub(fi.ModTime()) <= olderThan {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// Dir returns the absolute directory the store keeps its files in.
func (f *File) Dir() string { return f.dir }

// Name returns "file".
func (f *File) Name() string { return "file" }

// path returns the file that holds key, after validating key.
func (f *File) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, filepath.FromSlash(key)), nil
}

// Put writes blk durably under key, replacing any object held there. On error
// no partial file is left behind.
func (f *File) Put(ctx context.Context, key string, blk []byte) error {
	path, err := f.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file put %q: %w", key, err)
	}
	dir := filepath.Dir(path)
	if err := f.mkdirs(dir); err != nil {
		return fmt.Errorf("file put %q: %w", key, err)
	}
	err = f.putAtomic(ctx, dir, path, blk)
	f.files.forget(key) // a handle kept for key reads the file replaced
	if err != nil {
		return fmt.Errorf("file put %q: %w", key, err)
	}
	return nil
}

// putAtomic writes blk to a temporary file in dir, fsyncs it, renames it to
// path and fsyncs dir. On failure it removes the temporary file.
func (f *File) putAtomic(ctx context.Context, dir, path string, blk []byte) (err error) {
	tmp, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		var cerr error
		if !closed {
			cerr = tmp.Close()
		}
		err = errors.Join(err, cerr, os.Remove(tmp.Name()))
	}()
	if err := f.writeDurable(tmp, blk); err != nil {
		return err
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return err
	}
	// Last chance to give up: after the rename the object is visible.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return fsyncDir(dir)
}

// writeBuffered writes blk to tmp through the page cache and commits it to
// stable storage.
func writeBuffered(tmp *os.File, blk []byte) error {
	if _, err := tmp.Write(blk); err != nil {
		return err
	}
	return syncFile(tmp)
}

// mkdirs creates dir and any missing parents below the store's root, and
// fsyncs the parent of each directory it created so the new entries survive
// a crash.
func (f *File) mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a directory", dir)
		}
		return nil
	}
	var missing []string
	for d := dir; d != f.dir && d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		// A concurrent Put may create d first; its parent is fsynced
		// below either way.
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := fsyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// fsyncDir fsyncs a directory, making renames and new entries in it durable.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(syncFile(d), d.Close())
}

// open opens the regular file holding key. A missing file, or a directory
// standing where the file would be, is ErrNotFound.
func (f *File) open(ctx context.Context, op, key string) (*os.File, os.FileInfo, error) {
	path, err := f.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("file %s %q: %w", op, key, err)
	}
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDirSyscall) {
		return nil, nil, fmt.Errorf("file %s %q: %w", op, key, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("file %s %q: %w", op, key, err)
	}
	fi, err := fh.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = ErrNotFound
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("file %s %q: %w", op, key, err), fh.Close())
	}
	return fh, fi, nil
}

// handle returns an open handle of the file holding key for a read: one
// kept from an earlier read when its file is still the object at key's
// path, unchanged (so that a file removed or replaced behind the store's
// back is never read), else a new one. The caller must release it
// (f.files.release).
func (f *File) handle(ctx context.Context, op, key string) (*openFile, error) {
	if of := f.files.acquire(key); of != nil {
		if err := ctx.Err(); err != nil {
			f.files.release(of)
			return nil, fmt.Errorf("file %s %q: %w", op, key, err)
		}
		if of.current() {
			return of, nil
		}
		f.files.forget(key)
		f.files.release(of)
	}
	path, err := f.path(key)
	if err != nil {
		return nil, err
	}
	fh, fi, err := f.open(ctx, op, key)
	if err != nil {
		return nil, err
	}
	of := &openFile{key: key, path: path, fh: fh, fi: fi, refs: 1}
	f.files.keep(of)
	return of, nil
}

// Get reads the whole object.
func (f *File) Get(ctx context.Context, key string) ([]byte, error) {
	fh, fi, err := f.open(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	size := fi.Size()
	buf := make([]byte, size)
	if _, err := io.ReadFull(fh, buf); err != nil {
		return nil, fmt.Errorf("file get %q: %w", key, err)
	}
	return buf, nil
}

// GetRange reads n bytes at off with one positioned read.
func (f *File) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := checkRange(off, n); err != nil {
		return nil, fmt.Errorf("file get range %q: %w", key, err)
	}
	of, err := f.handle(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	defer f.files.release(of)
	if err := checkRangeSize(off, n, of.fi.Size()); err != nil {
		return nil, fmt.Errorf("file get range %q: %w", key, err)
	}
	buf := make([]byte, n)
	if m, err := of.fh.ReadAt(buf, off); m < len(buf) {
		return nil, fmt.Errorf("file get range %q: read %d of %d bytes: %w", key, m, n, err)
	}
	return buf, nil
}

// GetRangeInto fills dst with the len(dst) bytes at off, with one
// positioned read: GetRange into a buffer of the caller's, which it does
// not keep.
func (f *File) GetRangeInto(ctx context.Context, key string, off int64, dst []byte) error {
	n := int64(len(dst))
	if err := checkRange(off, n); err != nil {
		return fmt.Errorf("file get range %q: %w", key, err)
	}
	of, err := f.handle(ctx, "get range", key)
	if err != nil {
		return err
	}
	defer f.files.release(of)
	if err := checkRangeSize(off, n, of.fi.Size()); err != nil {
		return fmt.Errorf("file get range %q: %w", key, err)
	}
	if m, err := of.fh.ReadAt(dst, off); m < len(dst) {
		return fmt.Errorf("file get range %q: read %d of %d bytes: %w", key, m, n, err)
	}
	return nil
}

// Stat returns the object's size and modification time.
func (f *File) Stat(ctx context.Context, key string) (Info, error) {
	path, err := f.path(key)
	if err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("file stat %q: %w", key, err)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDirSyscall) || (err == nil && !fi.Mode().IsRegular()) {
		return Info{}, fmt.Errorf("file stat %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("file stat %q: %w", key, err)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object's file. A missing object is not an error. Empty
// stream directories are kept, and the directory is not fsynced: a deletion
// lost in a crash leaves a stale object, never a missing one.
func (f *File) Delete(ctx context.Context, key string) error {
	path, err := f.path(key)
	if err != nil {
		return err
	}
	defer f.files.forget(key)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file delete %q: %w", key, err)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDirSyscall) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("file delete %q: %w", key, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file delete %q: %w", key, err)
	}
	return nil
}

// List returns the objects whose keys begin with prefix, sorted by key. It
// walks only the directories that can hold such keys ("S/" walks <dir>/S)
// and skips files still being written.
func (f *File) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file list %q: %w", prefix, err)
	}
	root := f.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		root = filepath.Join(f.dir, filepath.FromSlash(prefix[:i]))
	}
	var out []Info
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDirSyscall)) {
				return fs.SkipAll // nothing under the prefix
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(f.dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip directories that cannot hold a matching key.
			if dk := key + "/"; path != root && !strings.HasPrefix(dk, prefix) && !strings.HasPrefix(prefix, dk) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), TempPrefix) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while walking
		}
		if err != nil {
			return err
		}
		out = append(out, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file list %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// checkRange rejects a negative offset or length.
func checkRange(off, n int64) error {
	if off < 0 || n < 0 {
		return fmt.Errorf("invalid range: offset %d, length %d", off, n)
	}
	return nil
}

// checkRangeSize rejects a range that runs past the end of an object of the
// given size. off and n are not negative.
func checkRangeSize(off, n, size int64) error {
	if off > size || n > size-off {
		return fmt.Errorf("range %d+%d runs past the end of a %d-byte object", off, n, size)
	}
	return nil
}
