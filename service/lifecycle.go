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
// done. Memory and file tiers are this replica's own and it manages all of
// them; the shared blob tier is managed, stream by stream, by the stream's
// leader, which also keeps the index current: the tiers a block is in, and
// for a block expired from the coldest tier, its entry removed.
func (a *archiver) lifecycle(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.evict(ctx, time.Now())
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

// leads reports whether this replica leads stream's ingest now.
func (a *archiver) leads(stream string) bool {
	a.mu.Lock()
	st := a.stats[stream]
	a.mu.Unlock()
	return st != nil && st.Leader.Load()
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
