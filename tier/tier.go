// Package tier holds the storage tiers that sealed blocks are written to, and
// the controller that writes through, reads through and evicts across them.
//
// A tier stores opaque, immutable objects (sealed blocks) under keys built by
// Key. Three stores implement Tier: Memory (an LRU bounded by bytes and block
// count), File (one file per block under a per-stream directory, written
// durably) and, in package tier/blob, Blob (S3 through aws-sdk-go-v2, or a
// local directory named by a dir:// URL). Every store passes the conformance
// suite in package tier/tiertest.
package tier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound is returned (wrapped) by a Tier when it does not hold a key.
var ErrNotFound = errors.New("tier: not found")

// ErrInvalidKey is returned (wrapped) for a key or stream name that may not
// reach a path or an object key.
var ErrInvalidKey = errors.New("tier: invalid key")

// ErrTooLarge is returned (wrapped) by a bounded store asked to hold an
// object larger than its bound.
var ErrTooLarge = errors.New("tier: object larger than the tier's bound")

// Tier is a store of immutable objects addressed by key. Implementations are
// safe for concurrent use. Buffers passed to Put may be retained by the store
// and must not be modified afterwards; buffers returned by Get and GetRange
// must not be modified by the caller (a memory store may share them).
type Tier interface {
	// Name is a short name for logs, metrics and replies ("memory", "file", "blob").
	Name() string
	// Put stores blk under key, replacing any object held there. It either
	// stores the whole object or, on error, leaves no partial object visible.
	Put(ctx context.Context, key string, blk []byte) error
	// Get returns the whole object.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns n bytes starting at off. A range that runs past the
	// end of the object is an error, not a short read.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Stat returns the size and modification time of the object.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// seqDigits is the width of a zero-padded sequence in an object key; 20
// digits hold any uint64, so keys sort in sequence order.
const seqDigits = 20

// Key returns the object key of the block of stream holding first..last:
// "<stream>/<first, 20 digits>-<last, 20 digits>.blk". Stores that have a
// prefix (the blob store) put it in front. It returns an error wrapping
// ErrInvalidKey for a stream name JetStream would not accept.
func Key(stream string, first, last uint64) (string, error) {
	if err := ValidateStream(stream); err != nil {
		return "", err
	}
	if first == 0 || last < first {
		return "", fmt.Errorf("%w: sequence range %d-%d", ErrInvalidKey, first, last)
	}
	return fmt.Sprintf("%s/%0*d-%0*d.blk", stream, seqDigits, first, seqDigits, last), nil
}

// ParseKey splits a key made by Key into its stream and sequence range.
func ParseKey(key string) (stream string, first, last uint64, err error) {
	stream, name, ok := strings.Cut(key, "/")
	if !ok || ValidateStream(stream) != nil || len(name) != 2*seqDigits+1+len(".blk") ||
		!strings.HasSuffix(name, ".blk") || name[seqDigits] != '-' {
		return "", 0, 0, fmt.Errorf("%w: %q is not a block key", ErrInvalidKey, key)
	}
	first, err1 := strconv.ParseUint(name[:seqDigits], 10, 64)
	last, err2 := strconv.ParseUint(name[seqDigits+1:2*seqDigits+1], 10, 64)
	if err1 != nil || err2 != nil || first == 0 || last < first {
		return "", 0, 0, fmt.Errorf("%w: %q is not a block key", ErrInvalidKey, key)
	}
	return stream, first, last, nil
}

// maxStreamName is JetStream's limit on a stream name's length.
const maxStreamName = 255

// ValidateStream reports whether name is a stream name JetStream accepts and
// that is safe in a path, an object key and a subject token: not empty, at
// most 255 bytes of valid UTF-8, printable, with no whitespace, no '.', '*', '>', '/', '\\'
// and not "." or "..".
func ValidateStream(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalidKey)
	}
	if len(name) > maxStreamName {
		return fmt.Errorf("%w: stream name longer than %d bytes", ErrInvalidKey, maxStreamName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: stream name %q is not valid UTF-8", ErrInvalidKey, name)
	}
	for _, r := range name {
		switch {
		case unicode.IsSpace(r) || !unicode.IsGraphic(r):
			return fmt.Errorf("%w: stream name %q has whitespace or a control character", ErrInvalidKey, name)
		case r == '.' || r == '*' || r == '>' || r == '/' || r == '\\':
			return fmt.Errorf("%w: stream name %q has %q", ErrInvalidKey, name, r)
		}
	}
	return nil
}
