package tier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-tiered/nts/block"
)

// ErrUnavailable is returned (wrapped, joined with each tier's error) when
// no tier could serve a block that the caller expected to exist.
var ErrUnavailable = errors.New("tier: no tier could serve the block")

// ErrLastCopy is returned (wrapped) by Demote when the hottest tier holding
// a block is the only one: demoting it would delete the block.
var ErrLastCopy = errors.New("tier: only copy of the block")

// Level is one tier under a Controller and its eviction policy.
type Level struct {
	Tier   Tier
	Policy Policy
}

// Controller writes sealed blocks through to every tier, reads them back
// hottest first (falling through on a miss or a corrupt copy, which Repair
// later rewrites from a good one), and moves them between tiers by policy
// (Evict) or on request (Promote, Demote).
// Levels are ordered hottest first. A Controller is safe for concurrent use.
type Controller struct {
	levels  []Level
	log     *slog.Logger
	readers *readerCache
	stats   []levelStats
	streams sync.Map // stream name -> *streamReads

	mu      sync.Mutex
	evicted []Eviction           // evictions a store made on its own, for the next Evict
	corrupt map[copyRef]struct{} // copies found corrupt, for the next Repair
}

// copyRef is the copy of a block in one tier.
type copyRef struct {
	level int
	key   string
}

type levelStats struct {
	reads, hits, misses, corrupt, errors, writes, evictions, repairs atomic.Int64
}

// TierStats counts what one tier did since the controller started.
type TierStats struct {
	Tier      string `json:"tier"`
	Reads     int64  `json:"reads"`
	Hits      int64  `json:"hits"`
	Misses    int64  `json:"misses"`
	Corrupt   int64  `json:"corrupt"`
	Errors    int64  `json:"errors"`
	Writes    int64  `json:"writes"`
	Evictions int64  `json:"evictions"`
	// Repairs counts corrupt copies rewritten from another tier.
	Repairs int64 `json:"repairs"`
}

// ControllerOption configures a Controller.
type ControllerOption func(*Controller)

// WithLogger sets the logger used to report corrupt copies and failures.
func WithLogger(l *slog.Logger) ControllerOption {
	return func(c *Controller) { c.log = l }
}

// WithReaderCache sets how many bytes of opened block footers are kept
// (default 64 MiB; an 8 MiB block of small messages has a ~100 KiB footer).
func WithReaderCache(bytes int64) ControllerOption {
	return func(c *Controller) { c.readers = newReaderCache(bytes) }
}

// NewController returns a controller over levels, hottest first.
func NewController(levels []Level, opts ...ControllerOption) (*Controller, error) {
	if len(levels) == 0 {
		return nil, errors.New("tier: controller needs at least one tier")
	}
	names := map[string]bool{}
	for _, l := range levels {
		if l.Tier == nil {
			return nil, errors.New("tier: nil tier")
		}
		if names[l.Tier.Name()] {
			return nil, fmt.Errorf("tier: two tiers named %q", l.Tier.Name())
		}
		names[l.Tier.Name()] = true
	}
	c := &Controller{
		levels: append([]Level(nil), levels...),
		log:    slog.Default(),
		stats:  make([]levelStats, len(levels)),
	}
	for _, o := range opts {
		o(c)
	}
	if c.readers == nil {
		c.readers = newReaderCache(64 << 20)
	}
	return c, nil
}

// level returns the level of the tier named name, or -1.
func (c *Controller) level(name string) int {
	for i, l := range c.levels {
		if l.Tier.Name() == name {
			return i
		}
	}
	return -1
}

// Levels returns the tiers and their policies, hottest first.
func (c *Controller) Levels() []Level { return append([]Level(nil), c.levels...) }

// Stats returns per-tier counters, hottest first.
func (c *Controller) Stats() []TierStats {
	out := make([]TierStats, len(c.levels))
	for i, l := range c.levels {
		s := &c.stats[i]
		out[i] = TierStats{
			Tier: l.Tier.Name(), Reads: s.reads.Load(), Hits: s.hits.Load(), Misses: s.misses.Load(),
			Corrupt: s.corrupt.Load(), Errors: s.errors.Load(), Writes: s.writes.Load(), Evictions: s.evictions.Load(),
			Repairs: s.repairs.Load(),
		}
	}
	return out
}

// Put writes blk under key to every tier at once and returns, when all hold
// it, the names of the tiers holding it, hottest first. A bounded tier too
// small for the block (ErrTooLarge) is skipped: it could never hold it. On
// error some tiers may hold the block: blocks are immutable and keys never
// reused, so a retry of the same Put is safe and completes the set.
func (c *Controller) Put(ctx context.Context, key string, blk []byte) ([]string, error) {
	errs := make([]error, len(c.levels))
	held := make([]bool, len(c.levels))
	var wg sync.WaitGroup
	for i, l := range c.levels {
		wg.Go(func() {
			err := l.Tier.Put(ctx, key, blk)
			// A reader opened on bytes the tier held before under key
			// (a retried write) reads the new ones afresh.
			c.readers.drop(i, key)
			switch {
			case err == nil:
				c.stats[i].writes.Add(1)
				held[i] = true
			case errors.Is(err, ErrTooLarge) && i < len(c.levels)-1:
				c.log.Debug("block larger than the tier's bound, not cached there", "tier", l.Tier.Name(), "key", key, "size", len(blk))
			default:
				c.stats[i].errors.Add(1)
				errs[i] = fmt.Errorf("%s: %w", l.Tier.Name(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("write-through of %s: %w", key, err)
	}
	var names []string
	for i, l := range c.levels {
		if held[i] {
			names = append(names, l.Tier.Name())
		}
	}
	return names, nil
}

// maxNoted bounds the evictions kept between two Evict calls, and the
// corrupt copies kept between two Repair calls.
const maxNoted = 1 << 16

// NoteEvicted records that the named tier dropped key on its own (a memory
// store over its bound evicts on Put); the next Evict reports it with its
// own evictions so the index follows. Safe to call from a store's callback.
func (c *Controller) NoteEvicted(tierName, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.levels {
		if l.Tier.Name() == tierName {
			c.readers.drop(i, key)
			c.stats[i].evictions.Add(1)
		}
	}
	if len(c.evicted) < maxNoted {
		c.evicted = append(c.evicted, Eviction{Key: key, Tier: tierName, Reason: "bound"})
	}
}

// noteCorrupt records that level's copy of key failed its checks, for the
// next Repair.
func (c *Controller) noteCorrupt(level int, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corrupt == nil {
		c.corrupt = map[copyRef]struct{}{}
	}
	if len(c.corrupt) < maxNoted {
		c.corrupt[copyRef{level, key}] = struct{}{}
	}
}

// Repair rewrites the copies that reads found corrupt since the last call,
// each from a good copy in another tier (colder tiers first, as a read
// falls through), checked whole with block.Verify before it is written. A
// copy that is gone by then (evicted) is left gone; one with no good copy
// elsewhere is logged and left as it is, still counted corrupt at each
// read. It returns how many copies it rewrote; a copy it could not write is
// noted again for the next call.
func (c *Controller) Repair(ctx context.Context) (int, error) {
	c.mu.Lock()
	todo := c.corrupt
	c.corrupt = nil
	c.mu.Unlock()
	n := 0
	var errs []error
	for ref := range todo {
		ok, err := c.repair(ctx, ref.level, ref.key)
		if err != nil {
			errs = append(errs, err)
			c.noteCorrupt(ref.level, ref.key)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// repair rewrites level's copy of key from a good copy in another tier.
func (c *Controller) repair(ctx context.Context, level int, key string) (bool, error) {
	dst := c.levels[level].Tier
	if _, err := dst.Stat(ctx, key); errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("repair %s in %s: %w", key, dst.Name(), err)
	}
	var order []int
	for j := level + 1; j < len(c.levels); j++ {
		order = append(order, j)
	}
	for j := level - 1; j >= 0; j-- {
		order = append(order, j)
	}
	for _, j := range order {
		src := c.levels[j].Tier
		blk, err := src.Get(ctx, key)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				c.log.Warn("reading a copy to repair another", "tier", src.Name(), "key", key, "err", err)
			}
			continue
		}
		if err := block.Verify(blk); err != nil {
			c.log.Error("corrupt block copy", "tier", src.Name(), "key", key, "err", err)
			continue
		}
		if err := dst.Put(ctx, key, blk); err != nil {
			return false, fmt.Errorf("repair %s in %s: %w", key, dst.Name(), err)
		}
		c.readers.drop(level, key)
		c.stats[level].repairs.Add(1)
		c.log.Info("corrupt block copy rewritten from another tier", "tier", dst.Name(), "key", key, "from", src.Name())
		return true, nil
	}
	c.log.Error("corrupt block copy has no good copy in another tier to repair it from", "tier", dst.Name(), "key", key)
	return false, nil
}

// Locate returns the names of the tiers holding key, hottest first.
func (c *Controller) Locate(ctx context.Context, key string) ([]string, error) {
	var held []string
	for _, l := range c.levels {
		_, err := l.Tier.Stat(ctx, key)
		switch {
		case err == nil:
			held = append(held, l.Tier.Name())
		case !errors.Is(err, ErrNotFound):
			return held, fmt.Errorf("%s: %w", l.Tier.Name(), err)
		}
	}
	return held, nil
}

// readThrough calls fn with an opened reader of key from each tier, hottest
// first, until fn succeeds. A miss, an unreachable tier or a corrupt copy
// falls through to the next tier; a corrupt copy is logged. An error of fn
// that is not about the block's bytes (block.ErrNotFound, ctx) stops at once.
func (c *Controller) readThrough(ctx context.Context, key string, size int64, fn func(r *block.Reader, tier string) error) error {
	var errs []error
	sr := c.streamReads(key)
	for i, l := range c.levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		st := &c.stats[i]
		st.reads.Add(1)
		sr.reads[i].Add(1)
		err := c.readFrom(ctx, i, key, size, fn)
		var ce *callerError
		switch {
		case errors.As(err, &ce):
			st.hits.Add(1)
			sr.hits[i].Add(1)
			return ce.err
		case err == nil:
			st.hits.Add(1)
			sr.hits[i].Add(1)
			return nil
		case errors.Is(err, block.ErrNotFound) || ctx.Err() != nil:
			st.hits.Add(1)
			sr.hits[i].Add(1)
			return err
		case errors.Is(err, ErrNotFound):
			st.misses.Add(1)
		case errors.Is(err, block.ErrCorrupt):
			st.corrupt.Add(1)
			c.readers.drop(i, key)
			c.noteCorrupt(i, key)
			c.log.Error("corrupt block copy, reading a colder tier; the next Repair rewrites it", "tier", l.Tier.Name(), "key", key, "err", err)
		default:
			st.errors.Add(1)
			c.readers.drop(i, key)
			c.log.Warn("tier read failed, reading a colder tier", "tier", l.Tier.Name(), "key", key, "err", err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", l.Tier.Name(), err))
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, key, errors.Join(errs...))
}

// callerError carries an error of the caller's callback through
// fallthrough, which returns it as it is instead of trying another tier.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }

func (c *Controller) readFrom(ctx context.Context, i int, key string, size int64, fn func(*block.Reader, string) error) error {
	t := c.levels[i].Tier
	r, ok := c.readers.get(i, key)
	if !ok {
		if size <= 0 {
			info, err := t.Stat(ctx, key)
			if err != nil {
				return err
			}
			size = info.Size
		}
		open := block.Open
		if _, ok := t.(*Memory); ok {
			// The memory tier hands out the very bytes it was given,
			// which nothing modifies: OpenStable checks every frame
			// once, as it opens the block, and no read checks again.
			open = block.OpenStable
		}
		var err error
		r, err = open(ctx, size, func(ctx context.Context, off, n int64) ([]byte, error) {
			if ra := readAheadFor(ctx, i, key); ra != nil {
				return ra.read(ctx, off, n)
			}
			return t.GetRange(ctx, key, off, n)
		})
		if err != nil {
			return err
		}
		c.readers.put(i, key, r)
	}
	return fn(r, t.Name())
}

// ReadMsg returns message seq of the block under key (size is its stored
// size, or 0 when unknown) and the name of the tier that served it. A seq
// the block does not hold is an error wrapping block.ErrNotFound.
func (c *Controller) ReadMsg(ctx context.Context, key string, size int64, seq uint64) (block.Msg, string, error) {
	var (
		m    block.Msg
		from string
	)
	err := c.readThrough(ctx, key, size, func(r *block.Reader, tier string) error {
		ctx := ctx
		if level := c.level(tier); level >= 0 {
			if t := c.levels[level].Tier; isRangeInto(t) {
				// The frame is read into a pooled buffer, given back
				// once Get has copied the message out of it.
				ra := newReadAhead(t, level, key, r.Meta().Size-r.FooterSize(), false)
				defer ra.close()
				ctx = context.WithValue(ctx, readAheadKey{}, ra)
			}
		}
		var err error
		m, err = r.Get(ctx, seq)
		from = tier
		return err
	})
	return m, from, err
}

// spansFrames reports whether the seqs from..to (to 0: to the end) of a
// block likely lie in more than one of its frames, were its messages of
// even size.
func spansFrames(m block.Meta, from, to uint64) bool {
	if to == 0 || to > m.LastSeq {
		to = m.LastSeq
	}
	from = max(from, m.FirstSeq)
	if m.Frames < 2 || from > to {
		return false
	}
	span := m.LastSeq - m.FirstSeq + 1
	return (to-from+1)*uint64(m.Frames) > 2*span // over two frames' worth
}

// ReadRange calls fn for each message of the block under key with a seq in
// [from, to] (to 0: to the end), in order, with the tier serving it. When a
// tier fails part way, the range resumes from a colder tier after the last
// message delivered, so fn never sees a seq twice. A range of more than one
// frame reads ahead (see readAhead): while fn handles the messages of one
// chunk of frames, the next chunk is being read.
func (c *Controller) ReadRange(ctx context.Context, key string, size int64, from, to uint64, fn func(m block.Msg, tier string) error) error {
	next := from
	return c.readThrough(ctx, key, size, func(r *block.Reader, tier string) error {
		ctx := ctx
		if level := c.level(tier); level >= 0 {
			ra := newReadAhead(c.levels[level].Tier, level, key, r.Meta().Size-r.FooterSize(), spansFrames(r.Meta(), next, to))
			defer ra.close()
			ctx = context.WithValue(ctx, readAheadKey{}, ra)
		}
		return r.Range(ctx, next, to, func(m block.Msg) error {
			if err := fn(m, tier); err != nil {
				return &callerError{err}
			}
			next = m.Seq + 1
			return nil
		})
	})
}
