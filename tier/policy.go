package tier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy bounds what one tier keeps. Zero fields are unbounded.
type Policy struct {
	// MaxAge evicts blocks written to the tier longer ago than this.
	MaxAge time.Duration
	// MaxBytes and MaxBlocks evict the oldest blocks until the tier holds
	// no more than this.
	MaxBytes  int64
	MaxBlocks int
}

func (p Policy) zero() bool { return p == Policy{} }

// Eviction records one block removed from one tier by Evict.
type Eviction struct {
	Key  string
	Tier string
	// Expired is set when the block was removed from the coldest tier: it
	// is gone from every tier and its index entry must go too.
	Expired bool
	// Reason is "max_age", "max_bytes", "max_blocks", or "bound" for a
	// block a bounded store dropped on its own.
	Reason string
}

// EvictOptions adds per-stream policies to the tiers' own.
type EvictOptions struct {
	// StreamPolicy, when set, returns a stream's policy for the tier at
	// level (0 is the hottest), applied to that stream's blocks alone, and
	// whether the stream has one.
	StreamPolicy func(stream string, level int) (Policy, bool)
	// Owns, when set, says whether this caller manages the stream's blocks
	// in the tier at level; others are neither counted nor evicted. Replicas
	// sharing a blob tier each manage the streams they lead there.
	Owns func(stream string, level int) bool
}

// Evict applies each tier's policy (and the per-stream ones) at now and
// returns what it removed. A block is removed from a tier only; from any tier
// but the coldest, only while a colder tier still holds it (a block never
// loses its last copy to a hot tier's policy). Removing a block from the
// coldest tier expires it: it is deleted from every tier.
func (c *Controller) Evict(ctx context.Context, now time.Time, opts EvictOptions) ([]Eviction, error) {
	c.mu.Lock()
	out := c.evicted
	c.evicted = nil
	c.mu.Unlock()
	var errs []error
	for i, l := range c.levels {
		objs, err := l.Tier.List(ctx, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", l.Tier.Name(), err))
			continue
		}
		if opts.Owns != nil {
			objs = slices.DeleteFunc(objs, func(o Info) bool {
				s, _, _, err := ParseKey(o.Key)
				return err != nil || !opts.Owns(s, i)
			})
		}
		victims := pickVictims(objs, now, l.Policy, i, opts)
		for _, v := range victims {
			ev, err := c.evictOne(ctx, i, v.info.Key, v.reason)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ev != nil {
				out = append(out, *ev)
			}
		}
	}
	return out, errors.Join(errs...)
}

type victim struct {
	info   Info
	reason string
}

// pickVictims chooses the blocks of one tier to evict: those past max_age,
// then the oldest (by write time, then key) until the bounds hold; first for
// each stream's own policy, then for the tier's.
func pickVictims(objs []Info, now time.Time, tierPolicy Policy, level int, opts EvictOptions) []victim {
	slices.SortFunc(objs, func(a, b Info) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		return cmpString(a.Key, b.Key)
	})
	gone := map[string]bool{}
	var out []victim
	apply := func(objs []Info, p Policy) {
		if p.zero() {
			return
		}
		var bytes int64
		var count int
		for _, o := range objs {
			if !gone[o.Key] {
				bytes += o.Size
				count++
			}
		}
		for _, o := range objs {
			if gone[o.Key] {
				continue
			}
			reason := ""
			switch {
			case p.MaxAge > 0 && now.Sub(o.ModTime) > p.MaxAge:
				reason = "max_age"
			case p.MaxBytes > 0 && bytes > p.MaxBytes:
				reason = "max_bytes"
			case p.MaxBlocks > 0 && count > p.MaxBlocks:
				reason = "max_blocks"
			default:
				continue
			}
			gone[o.Key] = true
			bytes -= o.Size
			count--
			out = append(out, victim{o, reason})
		}
	}
	if opts.StreamPolicy != nil {
		byStream := map[string][]Info{}
		var streams []string
		for _, o := range objs {
			s, _, _, err := ParseKey(o.Key)
			if err != nil {
				continue
			}
			if _, ok := byStream[s]; !ok {
				streams = append(streams, s)
			}
			byStream[s] = append(byStream[s], o)
		}
		for _, s := range streams {
			if p, ok := opts.StreamPolicy(s, level); ok {
				apply(byStream[s], p)
			}
		}
	}
	apply(objs, tierPolicy)
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *Controller) evictOne(ctx context.Context, level int, key, reason string) (*Eviction, error) {
	l := c.levels[level]
	if level == len(c.levels)-1 {
		if err := c.Expire(ctx, key); err != nil {
			return nil, err
		}
		c.stats[level].evictions.Add(1)
		return &Eviction{Key: key, Tier: l.Tier.Name(), Expired: true, Reason: reason}, nil
	}
	colder, err := c.heldColder(ctx, level, key)
	if err != nil {
		return nil, err
	}
	if !colder {
		c.log.Warn("not evicting the only copy of a block", "tier", l.Tier.Name(), "key", key, "reason", reason)
		return nil, nil
	}
	if err := l.Tier.Delete(ctx, key); err != nil {
		return nil, fmt.Errorf("evict %s from %s: %w", key, l.Tier.Name(), err)
	}
	c.readers.drop(level, key)
	c.stats[level].evictions.Add(1)
	return &Eviction{Key: key, Tier: l.Tier.Name(), Reason: reason}, nil
}

// heldColder reports whether a tier colder than level holds key.
func (c *Controller) heldColder(ctx context.Context, level int, key string) (bool, error) {
	for _, l := range c.levels[level+1:] {
		_, err := l.Tier.Stat(ctx, key)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return false, fmt.Errorf("stat %s in %s: %w", key, l.Tier.Name(), err)
		}
	}
	return false, nil
}

// Expire deletes key from every tier, coldest first, so that a failure part
// way leaves the block readable from a hotter tier rather than half gone.
func (c *Controller) Expire(ctx context.Context, key string) error {
	for i := len(c.levels) - 1; i >= 0; i-- {
		if err := c.levels[i].Tier.Delete(ctx, key); err != nil {
			return fmt.Errorf("expire %s from %s: %w", key, c.levels[i].Tier.Name(), err)
		}
	}
	c.readers.dropAll(key, len(c.levels))
	return nil
}

// hottest returns the level of the hottest tier holding key.
func (c *Controller) hottest(ctx context.Context, key string) (int, error) {
	for i, l := range c.levels {
		_, err := l.Tier.Stat(ctx, key)
		if err == nil {
			return i, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return -1, fmt.Errorf("stat %s in %s: %w", key, l.Tier.Name(), err)
		}
	}
	return -1, fmt.Errorf("%s: %w", key, ErrNotFound)
}

// Promote copies key from the hottest tier holding it into the next hotter
// tier and returns that tier's name. A block already in the hottest tier is
// left as it is (its name is returned).
func (c *Controller) Promote(ctx context.Context, key string) (string, error) {
	i, err := c.hottest(ctx, key)
	if err != nil {
		return "", err
	}
	if i == 0 {
		return c.levels[0].Tier.Name(), nil
	}
	blk, err := c.levels[i].Tier.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("promote %s: read %s: %w", key, c.levels[i].Tier.Name(), err)
	}
	to := c.levels[i-1].Tier
	err = to.Put(ctx, key, blk)
	c.readers.drop(i-1, key)
	if err != nil {
		return "", fmt.Errorf("promote %s into %s: %w", key, to.Name(), err)
	}
	c.stats[i-1].writes.Add(1)
	return to.Name(), nil
}

// Demote removes key from the hottest tier holding it and returns that
// tier's name. It refuses (ErrLastCopy) when no colder tier holds the block.
func (c *Controller) Demote(ctx context.Context, key string) (string, error) {
	i, err := c.hottest(ctx, key)
	if err != nil {
		return "", err
	}
	from := c.levels[i].Tier
	colder, err := c.heldColder(ctx, i, key)
	if err != nil {
		return "", err
	}
	if !colder {
		return "", fmt.Errorf("demote %s from %s: %w", key, from.Name(), ErrLastCopy)
	}
	if err := from.Delete(ctx, key); err != nil {
		return "", fmt.Errorf("demote %s from %s: %w", key, from.Name(), err)
	}
	c.readers.drop(i, key)
	c.stats[i].evictions.Add(1)
	return from.Name(), nil
}
