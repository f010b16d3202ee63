package tier

import (
	"sync/atomic"
)

// StreamReads counts one stream's block reads on one tier since the
// controller started: Reads is every attempt on the tier, Hits the attempts
// it answered (a miss or a failure falls through to the next tier).
type StreamReads struct {
	Tier  string `json:"tier"`
	Reads int64  `json:"reads"`
	Hits  int64  `json:"hits"`
}

// streamReads is one stream's counters, one pair per level.
type streamReads struct {
	reads, hits []atomic.Int64
}

// streamReads returns the counters of the stream key belongs to, making
// them on its first read. Keys that are not block keys share the "" entry.
// The map grows with the streams read, which the index bounds.
func (c *Controller) streamReads(key string) *streamReads {
	stream, _, _, err := ParseKey(key)
	if err != nil {
		stream = ""
	}
	if v, ok := c.streams.Load(stream); ok {
		return v.(*streamReads)
	}
	v, _ := c.streams.LoadOrStore(stream, &streamReads{
		reads: make([]atomic.Int64, len(c.levels)),
		hits:  make([]atomic.Int64, len(c.levels)),
	})
	return v.(*streamReads)
}

// StreamStats returns the reads and hits of each stream read so far, per
// tier, hottest first.
func (c *Controller) StreamStats() map[string][]StreamReads {
	out := map[string][]StreamReads{}
	c.streams.Range(func(k, v any) bool {
		sr := v.(*streamReads)
		rs := make([]StreamReads, len(c.levels))
		for i, l := range c.levels {
			rs[i] = StreamReads{Tier: l.Tier.Name(), Reads: sr.reads[i].Load(), Hits: sr.hits[i].Load()}
		}
		out[k.(string)] = rs
		return true
	})
	return out
}
