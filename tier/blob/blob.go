// Package blob is the cold tier: objects in an S3-compatible bucket through
// aws-sdk-go-v2, or, for the embedded default and tests, in a local directory
// named by a dir:// URL. Both backends sit behind one type, Blob, which
// implements tier.Tier and passes the tier/tiertest suite.
//
// A store is named by a URL (see ParseURL):
//
//	dir:///var/lib/nts/blob
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//
// A dir:// store is a tier.File written around the page cache
// (tier.WriteAround): the memory and file tiers in front of it take the
// reads, so its pages would only sit in the cache.
//
// In a bucket, key k is stored as object <prefix>/k. Uploads larger than the
// part size go up in parts (multipart upload, aborted on failure); ranged
// reads are ranged GETs whose length is checked; failed requests are retried
// with exponential backoff and jitter for as long as the context allows.
package blob

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-tiered/nts/tier"
)

// backend is what a Blob delegates to once it has validated the key, the
// range and the context.
type backend interface {
	Put(ctx context.Context, key string, blk []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	Stat(ctx context.Context, key string) (tier.Info, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]tier.Info, error)
}

// Blob is a tier.Tier kept in an S3 bucket or a local directory. It is safe
// for concurrent use. Put does not retain blk; buffers returned by Get and
// GetRange belong to the caller.
type Blob struct {
	cfg Config
	be  backend
}

var _ tier.Tier = (*Blob)(nil)

// Open opens the store rawURL names, with opts resolved against the URL as
// ParseURL describes. A dir:// store's directory is created if missing; an
// s3:// store checks its bucket can be reached, retrying as configured
// within ctx.
func Open(ctx context.Context, rawURL string, opts Options) (*Blob, error) {
	cfg, err := ParseURL(rawURL, opts)
	if err != nil {
		return nil, err
	}
	var be backend
	switch cfg.Scheme {
	case SchemeDir:
		// The tiers in front of it take the reads: its blocks are
		// written around the page cache.
		f, err := tier.NewFile(cfg.Dir, tier.WriteAround())
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", cfg, err)
		}
		be = f
	case SchemeS3:
		s, err := openS3(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", cfg, err)
		}
		be = s
	}
	return &Blob{cfg: cfg, be: be}, nil
}

// RemoveTemp deletes a dir:// store's temporary files last modified more
// than olderThan ago and returns how many (see tier.File.RemoveTemp). An S3
// store leaves no temporary objects (a failed multipart upload is aborted)
// and returns 0.
func (b *Blob) RemoveTemp(olderThan time.Duration) (int, error) {
	if f, ok := b.be.(*tier.File); ok {
		return f.RemoveTemp(olderThan)
	}
	return 0, nil
}

// Name returns "blob".
func (b *Blob) Name() string { return "blob" }

// Config returns the store's parsed URL and resolved options.
func (b *Blob) Config() Config { return b.cfg }

// String returns the store's URL without credentials.
func (b *Blob) String() string { return b.cfg.String() }

// check validates key and ctx before any request.
func check(ctx context.Context, op, key string) error {
	if err := tier.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob %s %q: %w", op, key, err)
	}
	return nil
}

// Put stores blk under key, replacing any object held there.
func (b *Blob) Put(ctx context.Context, key string, blk []byte) error {
	if err := check(ctx, "put", key); err != nil {
		return err
	}
	return b.be.Put(ctx, key, blk)
}

// Get returns the whole object.
func (b *Blob) Get(ctx context.Context, key string) ([]byte, error) {
	if err := check(ctx, "get", key); err != nil {
		return nil, err
	}
	return b.be.Get(ctx, key)
}

// GetRange returns n bytes at off. A range that runs past the end of the
// object is an error.
func (b *Blob) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := check(ctx, "get range", key); err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("blob get range %q: invalid range: offset %d, length %d", key, off, n)
	}
	return b.be.GetRange(ctx, key, off, n)
}

// Stat returns the object's size and modification time.
func (b *Blob) Stat(ctx context.Context, key string) (tier.Info, error) {
	if err := check(ctx, "stat", key); err != nil {
		return tier.Info{}, err
	}
	return b.be.Stat(ctx, key)
}

// Delete removes the object; a missing object is not an error.
func (b *Blob) Delete(ctx context.Context, key string) error {
	if err := check(ctx, "delete", key); err != nil {
		return err
	}
	return b.be.Delete(ctx, key)
}

// List returns the objects whose keys begin with prefix, sorted by key.
func (b *Blob) List(ctx context.Context, prefix string) ([]tier.Info, error) {
	if err := tier.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob list %q: %w", prefix, err)
	}
	return b.be.List(ctx, prefix)
}
