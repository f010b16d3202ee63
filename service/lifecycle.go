package service

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// lifecycle runs the tiers' eviction policies every interval until ctx is
// done, after repairing the copies reads found corrupt. Memory and file
// tiers are this replica's own and it manages all of them; the shared blob
// tier is managed, stream by stream, by the stream's leader, which also
// keeps the index current: the tiers a block is in, and for a block expired
// from the coldest tier, its entry removed.
func (a *archiver) lifecycle(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var swept time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.repair(ctx)
		a.evict(ctx, time.Now())
		// Sweeping lists every tier again: once per grace period is enough,
		// since nothing younger than that is swept anyway.
		if now := time.Now(); now.Sub(swept) >= a.orphanGrace {
			a.sweep(ctx, now)
			swept = now
		}
	}
}

// repair rewrites the block copies that reads found corrupt since the last
// round, each from a good copy in another tier (tier.Controller.Repair).
func (a *archiver) repair(ctx context.Context) {
	n, err := a.ctrl.Repair(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("repairing corrupt block copies; the next round tries again", "err", err)
	}
	if n > 0 {
		a.log.Info("corrupt block copies rewritten from other tiers", "copies", n)
	}
}

// tempRemover is a tier that writes through temporary files (the file tier,
// a dir:// blob tier) and can delete the ones a crash left behind.
type tempRemover interface {
	RemoveTemp(olderThan time.Duration) (int, error)
}

// sweep deletes the partial writes a crash left in the tiers (temporary
// files unmodified for tier.StaleTemp), and orphans: objects in a tier that
// the index does not list, that end at or below their archive's head, and
// that were written longer than orphanGrace ago. A leader that crashed,
// froze or was deposed between writing a block and committing it leaves
// one; so does a block expired by another replica while this one held a
// local copy. A block being written now ends above the head until it is
// committed, and is never touched. In the shared blob tier only the
// archives this replica leads are swept.
func (a *archiver) sweep(ctx context.Context, now time.Time) {
	heads := map[string]uint64{}
	for _, s := range a.ix.Streams() {
		if s.Head != nil {
			heads[s.Stream] = s.Head.LastSeq
		}
	}
	for _, l := range a.ctrl.Levels() {
		if r, ok := l.Tier.(tempRemover); ok {
			if n, err := r.RemoveTemp(tier.StaleTemp); err != nil {
				a.log.Warn("removing a tier's abandoned partial writes", "tier", l.Tier.Name(), "err", err)
			} else if n > 0 {
				a.log.Info("removed abandoned partial writes", "tier", l.Tier.Name(), "files", n)
			}
		}
		objs, err := l.Tier.List(ctx, "")
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("listing a tier for orphans", "tier", l.Tier.Name(), "err", err)
			}
			continue
		}
		for _, o := range objs {
			archive, first, last, err := tier.ParseKey(o.Key)
			head, ok := heads[archive]
			switch {
			case err != nil || !ok || last > head || now.Sub(o.ModTime) < a.orphanGrace:
				continue
			case l.Tier.Name() == "blob" && !a.leads(archive):
				continue
			}
			if bm, ok := a.ix.Block(archive, first); ok && bm.Key == o.Key {
				continue
			}
			if err := l.Tier.Delete(ctx, o.Key); err != nil {
				a.log.Warn("deleting an orphan block", "tier", l.Tier.Name(), "key", o.Key, "err", err)
				continue
			}
			a.log.Info("deleted an orphan block the index does not list", "tier", l.Tier.Name(), "key", o.Key)
		}
	}
}

func (a *archiver) evict(ctx context.Context, now time.Time) {
	levels := a.ctrl.Levels()
	shared := func(level int) bool { return levels[level].Tier.Name() == "blob" }
	evs, err := a.ctrl.Evict(ctx, now, tier.EvictOptions{
		StreamPolicy: a.streamPolicy,
		Owns: func(stream string, level int) bool {
			return !shared(level) || a.leads(stream)
		},
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("eviction", "err", err)
	}
	for _, e := range evs {
		stream, first, _, err := tier.ParseKey(e.Key)
		if err != nil || !a.leads(stream) {
			continue
		}
		if e.Expired {
			err = a.ix.DeleteBlock(ctx, stream, first)
			if errors.Is(err, index.ErrNotFound) {
				err = nil
			}
		} else if bm, ok := a.ix.Block(stream, first); ok {
			err = a.ix.UpdateTiers(ctx, stream, first, slices.DeleteFunc(slices.Clone(bm.Tiers), func(t string) bool { return t == e.Tier }))
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("index update after eviction", "key", e.Key, "err", err)
		}
	}
	if len(evs) > 0 {
		a.log.Info("evicted", "blocks", len(evs))
	}
}

// leads reports whether this replica now leads the ingest writing the
// archive of that name (a stream's name, or "<stream>~N" for a later
// incarnation).
func (a *archiver) leads(archive string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, st := range a.stats {
		if st.Leader.Load() && st.Archive() == archive {
			return true
		}
	}
	return false
}

// streamPolicy returns the configured eviction override of stream for the
// tier at level, if any.
func (a *archiver) streamPolicy(stream string, level int) (tier.Policy, bool) {
	name := a.ctrl.Levels()[level].Tier.Name()
	for _, s := range a.cfg.Streams {
		if !matches(s.Name, stream) || s.Tiers == nil {
			continue
		}
		var p *TierPolicy
		switch name {
		case "memory":
			p = s.Tiers.Memory
		case "file":
			p = s.Tiers.File
		case "blob":
			p = s.Tiers.Blob
		}
		if p == nil {
			return tier.Policy{}, false
		}
		return p.tier(), true
	}
	return tier.Policy{}, false
}
