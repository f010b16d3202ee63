package tier

import (
	"context"
	"errors"

	"github.com/nats-tiered/nts/block"
)

// Read calls fn with an opened reader of the block under key (size is its
// stored size, or 0 when unknown) and the name of the tier serving it,
// hottest tier first, as ReadMsg reads: a tier that misses the block, fails,
// or holds a corrupt copy falls through to the next. fn may use the reader
// only until it returns (the reader stays cached for later reads).
//
// An error of fn that wraps block.ErrCorrupt (a frame of this copy is
// damaged) or ErrNotFound (the tier lost the block after the reader was
// opened) falls through to the next tier, which calls fn again from the
// start; any other error of fn is returned as it is, without trying another
// tier. When no tier could serve the block, the error wraps ErrUnavailable.
func (c *Controller) Read(ctx context.Context, key string, size int64, fn func(r *block.Reader, tier string) error) error {
	return c.readThrough(ctx, key, size, func(r *block.Reader, tier string) error {
		err := fn(r, tier)
		if err == nil || errors.Is(err, block.ErrCorrupt) || errors.Is(err, ErrNotFound) {
			return err
		}
		return &callerError{err}
	})
}
