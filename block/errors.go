package block

import (
	"errors"
	"fmt"
)

// ErrCorrupt is returned (wrapped) when a block's bytes are not a valid
// block: bad magic or version, a checksum mismatch, a length or count that
// does not fit the bytes present, a frame that does not decompress to its
// raw length. The message names the byte offset in the block where the
// problem was found. A reader that gets it should try another copy.
var ErrCorrupt = errors.New("block: corrupt")

// ErrNotFound is returned (wrapped) by Reader.Get for a sequence the block
// does not hold: below its first, above its last, or in a gap.
var ErrNotFound = errors.New("block: message not in block")

// ErrOrder is returned (wrapped) by Builder.Add for a message whose
// sequence is 0 or not above the last sequence the builder holds.
var ErrOrder = errors.New("block: sequence out of order")

// ErrTooLarge is returned (wrapped) by Builder.Add for a message whose
// record exceeds MaxMsgSize, or when the builder already holds MaxMsgs
// messages.
var ErrTooLarge = errors.New("block: too large")

// ErrEmpty is returned (wrapped) by Builder.Seal when the builder holds no
// message.
var ErrEmpty = errors.New("block: empty")

// ErrInvalidOption is returned (wrapped) by NewBuilder and ParseCodec for an
// option out of range.
var ErrInvalidOption = errors.New("block: invalid option")

// corruptf returns an error wrapping ErrCorrupt that names the offset in the
// block where the problem was found.
func corruptf(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}
