package index

import "errors"

// ErrFenced is returned (wrapped) by Commit when the stream's head is no
// longer at the revision the caller read: another leader committed since, so
// the caller has been deposed and must stop writing for the stream.
var ErrFenced = errors.New("index: fenced: the stream's head moved")

// ErrConflict is returned (wrapped) when a different block entry already
// holds the key a block would be written to. Entries are never overwritten.
var ErrConflict = errors.New("index: a different block entry exists")

// ErrNotFound is returned (wrapped) for a block entry that does not exist.
var ErrNotFound = errors.New("index: not found")

// ErrInvalid is returned (wrapped) for an argument the index cannot accept:
// a stream name JetStream would not accept, a malformed block description,
// bad options.
var ErrInvalid = errors.New("index: invalid argument")

// ErrCorrupt is returned (wrapped) for an entry in the bucket that does not
// decode to what its key says. The view skips such entries.
var ErrCorrupt = errors.New("index: malformed entry")

// ErrClosed is returned (wrapped) by WaitFor once the view has stopped
// following the bucket: after Close, or once the connection closed.
var ErrClosed = errors.New("index: closed")

// ErrLeadershipLost is the cause of a leader context's cancellation when the
// lock could not be renewed (see Campaign).
var ErrLeadershipLost = errors.New("index: leadership lost")
