package service

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// StreamsReply is the reply of the streams endpoint.
type StreamsReply struct {
	Streams []index.StreamSummary `json:"streams"`
}

// StreamInfo is the reply of stream.info.
type StreamInfo struct {
	Stream   string `json:"stream"`
	Blocks   int    `json:"blocks"`
	Msgs     uint64 `json:"msgs"`
	Bytes    int64  `json:"bytes"`
	RawBytes int64  `json:"raw_bytes"`
	// Tiers is each tier's blocks and stored bytes of the stream.
	Tiers map[string]index.TierUsage `json:"tiers"`
	// FirstSeq, LastSeq, FirstTime and LastTime bound the archived range.
	FirstSeq  uint64    `json:"first_seq"`
	LastSeq   uint64    `json:"last_seq"`
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	// Lag is how many messages JetStream holds beyond the archive: from the
	// ingest itself when this replica leads the stream (LagFrom "ingest"),
	// else JetStream's last sequence less the archive's head ("jetstream").
	// It is absent when neither is known (e.g. the stream is gone).
	Lag     *uint64 `json:"lag,omitempty"`
	LagFrom string  `json:"lag_from,omitempty"`
	// Leader is the instance id of the replica ingesting the stream, if any.
	Leader string `json:"leader,omitempty"`
}

// BlocksReply is one page of the blocks endpoint. When More is set,
// NextSeq is the from_seq of the next page.
type BlocksReply struct {
	Blocks  []index.BlockMeta `json:"blocks"`
	More    bool              `json:"more"`
	NextSeq uint64            `json:"next_seq,omitempty"`
}

// Status is the reply of admin.status: one replica's state.
type Status struct {
	Instance string            `json:"instance"`
	Version  string            `json:"version"`
	Tiers    []tier.TierStats  `json:"tiers"`
	Leads    []string          `json:"leads"`
	Streams  map[string]Ingest `json:"streams"`
}

// Ingest is one stream as one replica sees it: what its ingest did since
// the replica started (Messages to Pending), the stream's archive as the
// index holds it (Archive, ArchivedBlocks, Tiers) and this replica's reads of
// it per tier.
type Ingest struct {
	Leader   bool   `json:"leader"`
	Messages int64  `json:"messages"`
	Blocks   int64  `json:"blocks"`
	Bytes    int64  `json:"bytes"`
	RawBytes int64  `json:"raw_bytes"`
	LastSeq  uint64 `json:"last_seq"`
	Pending  uint64 `json:"pending"`
	// Lag is how many messages JetStream holds beyond those fetched: set
	// on the leader only, which alone knows it.
	Lag *uint64 `json:"lag,omitempty"`
	// Archive is the name the stream's current incarnation is archived
	// under; ArchivedBlocks and Tiers describe that archive (every
	// replica's blocks, not only this one's).
	Archive        string                     `json:"archive,omitempty"`
	ArchivedBlocks int                        `json:"archived_blocks"`
	Tiers          map[string]index.TierUsage `json:"tiers"`
	// Reads counts this replica's block reads of the archive per tier,
	// hottest first; empty before the first read.
	Reads []tier.StreamReads `json:"reads"`
}

func (a *api) prepareStreams(req micro.Request) (job, error) {
	return nil, respondJSON(req, StreamsReply{Streams: a.ix.Streams()})
}

func (a *api) prepareStreamInfo(req micro.Request) (job, error) {
	stream, err := parseStreamOnly(a.cfg.Service.Prefix, "stream", req.Subject())
	if err != nil {
		return nil, err
	}
	sum, ok := a.ix.Stream(stream)
	if !ok {
		return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
	}
	return func(ctx context.Context, reply string) error {
		info := StreamInfo{
			Stream: stream, Blocks: sum.Blocks, Msgs: sum.Msgs, Bytes: sum.Bytes, RawBytes: sum.RawBytes,
			Tiers: sum.Tiers, FirstSeq: sum.FirstSeq, LastSeq: sum.LastSeq,
		}
		if info.Tiers == nil {
			info.Tiers = map[string]index.TierUsage{}
		}
		if sum.Blocks > 0 {
			info.FirstTime = time.Unix(0, sum.FirstTime).UTC()
			info.LastTime = time.Unix(0, sum.LastTime).UTC()
		}
		a.lag(ctx, &info, sum)
		leader, held, err := a.ix.Leader(ctx, stream)
		if err != nil {
			return err
		}
		if held {
			info.Leader = leader
		}
		return a.publishJSON(reply, info)
	}, nil
}

// lag fills info's lag: from this replica's ingest when it leads the
// stream, else from JetStream's stream state.
func (a *api) lag(ctx context.Context, info *StreamInfo, sum index.StreamSummary) {
	if a.arch != nil {
		if st := a.arch.Stats()[info.Stream]; st != nil && st.Leader.Load() {
			n := st.Pending.Load()
			info.Lag, info.LagFrom = &n, "ingest"
			return
		}
	}
	s, err := a.js.Stream(ctx, info.Stream)
	if err != nil {
		return
	}
	head := sum.LastSeq
	if sum.Head != nil {
		head = sum.Head.LastSeq
	}
	var n uint64
	if last := s.CachedInfo().State.LastSeq; last > head {
		n = last - head
	}
	info.Lag, info.LagFrom = &n, "jetstream"
}

func (a *api) prepareBlocks(req micro.Request) (job, error) {
	stream, err := parseStreamOnly(a.cfg.Service.Prefix, "blocks", req.Subject())
	if err != nil {
		return nil, err
	}
	r, err := parseBlocks(req.Data())
	if err != nil {
		return nil, err
	}
	if _, ok := a.ix.Stream(stream); !ok {
		return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
	}
	out, err := pageBlocks(a.ix.Blocks(stream, r.FromSeq, r.Limit+1), r.Limit, a.nc.MaxPayload()-replyOverhead)
	if err != nil {
		return nil, err
	}
	return nil, respondJSON(req, out)
}

// replyOverhead is what a JSON reply's page leaves of the max payload for
// the rest of the message.
const replyOverhead = 1 << 10

// pageBlocks makes a blocks reply of up to limit of list (which holds one
// more when there are more), without their filters and no larger than
// maxBytes encoded, but always with at least one block.
func pageBlocks(list []index.BlockMeta, limit int, maxBytes int64) (BlocksReply, error) {
	out := BlocksReply{Blocks: make([]index.BlockMeta, 0, min(len(list), limit))}
	size := int64(len(`{"blocks":[],"more":true,"next_seq":18446744073709551615}`))
	for i, m := range list {
		m = replyMeta(m)
		if i == limit {
			out.More, out.NextSeq = true, m.FirstSeq
			break
		}
		b, err := json.Marshal(m)
		if err != nil {
			return BlocksReply{}, err
		}
		if size += int64(len(b)) + 1; size > maxBytes && i > 0 {
			out.More, out.NextSeq = true, m.FirstSeq
			break
		}
		out.Blocks = append(out.Blocks, m)
	}
	return out, nil
}

// replyMeta is m as the blocks and block.info endpoints show it: without
// its subject filter, which only the kv and obj lookups use and which,
// over many subjects, is larger than the rest of the entry many times.
func replyMeta(m index.BlockMeta) index.BlockMeta {
	m.Filter = nil
	return m
}

func (a *api) prepareBlockInfo(req micro.Request) (job, error) {
	stream, first, err := parseStreamSeq(a.cfg.Service.Prefix, "block", req.Subject())
	if err != nil {
		return nil, err
	}
	m, ok := a.ix.Block(stream, first)
	if !ok {
		if _, known := a.ix.Stream(stream); !known {
			return nil, fmt.Errorf("%w: stream %q is not archived", ErrNotFound, stream)
		}
		return nil, fmt.Errorf("%w: stream %q has no block starting at seq %d", ErrNotFound, stream, first)
	}
	return nil, respondJSON(req, replyMeta(m))
}

func (a *api) prepareStatus(req micro.Request) (job, error) {
	return nil, respondJSON(req, a.status())
}

// status describes this replica from memory alone.
func (a *api) status() Status {
	s := Status{Instance: a.id, Version: Version(), Tiers: a.ctrl.Stats(), Leads: []string{}, Streams: map[string]Ingest{}}
	if a.arch == nil {
		return s
	}
	reads := a.ctrl.StreamStats()
	for name, st := range a.arch.Stats() {
		in := Ingest{
			Leader: st.Leader.Load(), Messages: st.Messages.Load(), Blocks: st.Blocks.Load(),
			Bytes: st.Bytes.Load(), RawBytes: st.RawBytes.Load(), LastSeq: st.LastSeq.Load(), Pending: st.Pending.Load(),
			Archive: st.Archive(), Tiers: map[string]index.TierUsage{}, Reads: []tier.StreamReads{},
		}
		if in.Leader {
			lag := in.Pending
			in.Lag = &lag
		}
		if in.Archive != "" {
			if sum, ok := a.ix.Stream(in.Archive); ok {
				in.ArchivedBlocks = sum.Blocks
				maps.Copy(in.Tiers, sum.Tiers)
			}
			if r, ok := reads[in.Archive]; ok {
				in.Reads = r
			}
		}
		s.Streams[name] = in
		if in.Leader {
			s.Leads = append(s.Leads, name)
		}
	}
	slices.Sort(s.Leads)
	return s
}

// publishJSON sends v as JSON to reply.
func (a *api) publishJSON(reply string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	return a.nc.Publish(reply, data)
}
