package perf

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
)

// Target is a stream that an nts service archives, as the read
// measurements address and check it.
type Target struct {
	// Prefix is the service's subject prefix; empty is client.DefaultPrefix.
	Prefix string
	// Stream is the archived stream.
	Stream string
	// Size, when not 0, is the payload size the stream was published with
	// by SeqBacklog: every message read must then be the one asked for,
	// payload SeqPayload(seq, Size), and a range must have no gaps. With 0,
	// only the headers of a reply are checked.
	Size int
}

func (t Target) prefix() string {
	if t.Prefix == "" {
		return client.DefaultPrefix
	}
	return t.Prefix
}

// seqPayloadMin is the smallest payload SeqBacklog publishes: the sequence.
const seqPayloadMin = 8

// SeqPayload returns the payload of the message with stream sequence seq
// that SeqBacklog publishes: size bytes (at least 8), seq little-endian then
// a pseudo-random run seeded with seq. It does not compress, so a frame of
// such messages is as large stored as raw, the costliest case for a cold
// tier; and a reply for another seq never passes for this one.
func SeqPayload(seq uint64, size int) []byte {
	b := make([]byte, max(size, seqPayloadMin))
	binary.LittleEndian.PutUint64(b, seq)
	x := seq
	for i := seqPayloadMin; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], splitMix64(&x))
		copy(b[i:], w[:])
	}
	return b
}

// checkSeqPayload reports whether data is SeqPayload(seq, size), without
// allocating.
func checkSeqPayload(seq uint64, size int, data []byte) error {
	if len(data) != max(size, seqPayloadMin) {
		return fmt.Errorf("%w: seq %d: payload of %d bytes, want %d", ErrCheck, seq, len(data), size)
	}
	if got := binary.LittleEndian.Uint64(data); got != seq {
		return fmt.Errorf("%w: seq %d: payload of seq %d", ErrCheck, seq, got)
	}
	x := seq
	for i := seqPayloadMin; i < len(data); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], splitMix64(&x))
		if string(data[i:min(i+8, len(data))]) != string(w[:min(8, len(data)-i)]) {
			return fmt.Errorf("%w: seq %d: payload differs at byte %d", ErrCheck, seq, i)
		}
	}
	return nil
}

// splitMix64 advances *x and returns the next value of the SplitMix64
// generator.
func splitMix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// SeqBacklog creates stream (subject "<stream>.data") and publishes n
// messages of size bytes (at least 8), message seq carrying
// SeqPayload(seq, size). The stream must be new: it checks that the stream
// then holds exactly sequences 1 to n.
func SeqBacklog(ctx context.Context, js jetstream.JetStream, stream string, n, size int) error {
	if size < seqPayloadMin || n < 1 {
		return fmt.Errorf("perf: seq backlog of %d messages of %d bytes: want 1 or more of at least %d", n, size, seqPayloadMin)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".data"}})
	if err != nil {
		return fmt.Errorf("create %s: %w", stream, err)
	}
	subj := stream + ".data"
	for i := 1; i <= n; i++ {
		// PublishAsync keeps the message until it is acknowledged: each
		// gets its own payload.
		if _, err := js.PublishAsync(subj, SeqPayload(uint64(i), size)); err != nil {
			return err
		}
		if i%4096 == 0 || i == n {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("info of %s: %w", stream, err)
	}
	if st := info.State; st.Msgs != uint64(n) || st.FirstSeq != 1 || st.LastSeq != uint64(n) {
		return fmt.Errorf("perf: stream %s holds %d messages, seqs %d to %d, after publishing %d to a new stream",
			stream, st.Msgs, st.FirstSeq, st.LastSeq, n)
	}
	return nil
}

// ntsRequestTimeout bounds one request of the read measurements when the
// caller's context sets no deadline.
const ntsRequestTimeout = 30 * time.Second

// request sends data to subject and returns the reply, bounded by
// ntsRequestTimeout when ctx sets no deadline.
func request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ntsRequestTimeout)
		defer cancel()
	}
	m, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	return m, nil
}

// ntsRequest sends body (JSON-encoded unless nil) to subject and decodes
// the reply into out, or returns an error naming a micro error reply.
func ntsRequest(ctx context.Context, nc *nats.Conn, subject string, body, out any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	m, err := request(ctx, nc, subject, data)
	if err != nil {
		return err
	}
	if err := errorReply(subject, m); err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCheck, subject, err)
	}
	return nil
}

// errorReply returns the error a micro error reply carries, or nil.
func errorReply(subject string, m *nats.Msg) error {
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return fmt.Errorf("%w: %s answered %s %s", ErrCheck, subject, code, m.Header.Get(micro.ErrorHeader))
	}
	return nil
}

// Blocks returns every block of t's stream that the service's index holds,
// in sequence order, paging its blocks endpoint.
func Blocks(ctx context.Context, nc *nats.Conn, t Target) ([]index.BlockMeta, error) {
	subj := t.prefix() + ".blocks." + t.Stream
	var out []index.BlockMeta
	from := uint64(0)
	for {
		var page service.BlocksReply
		if err := ntsRequest(ctx, nc, subj, map[string]any{"from_seq": from, "limit": 1000}, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Blocks...)
		if !page.More {
			return out, nil
		}
		if page.NextSeq <= from {
			return nil, fmt.Errorf("%w: %s: next_seq %d does not advance from %d", ErrCheck, subj, page.NextSeq, from)
		}
		from = page.NextSeq
	}
}

// pollEvery is how often the read measurements poll the service for a
// state they wait for.
const pollEvery = 20 * time.Millisecond

// WaitArchived waits until the service has archived t's stream up to seq
// last, and returns its blocks then. It waits until ctx is done: give ctx a
// deadline.
func WaitArchived(ctx context.Context, nc *nats.Conn, t Target, last uint64) ([]index.BlockMeta, error) {
	for {
		blocks, err := Blocks(ctx, nc, t)
		if err == nil && len(blocks) > 0 && blocks[len(blocks)-1].LastSeq >= last {
			return blocks, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("archived %d blocks", len(blocks))
			}
			return nil, fmt.Errorf("waiting for %s to be archived to seq %d: %w (last: %v)", t.Stream, last, ctx.Err(), err)
		case <-time.After(pollEvery):
		}
	}
}

// Place moves every block of t's stream between the tiers of the replica
// that answers, with admin.demote and admin.promote, until tierName is the
// hottest tier holding each, and returns the blocks once the index shows
// them there. The replica answering must lead the stream (the index
// follows its leader's tiers), so measure with one replica. It waits for
// the index until ctx is done: give ctx a deadline.
func Place(ctx context.Context, nc *nats.Conn, t Target, tierName string) ([]index.BlockMeta, error) {
	blocks, err := Blocks(ctx, nc, t)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		if err := placeBlock(ctx, nc, t, b, tierName); err != nil {
			return nil, err
		}
	}
	for {
		blocks, err := Blocks(ctx, nc, t)
		if err != nil {
			return nil, err
		}
		ok := true
		for _, b := range blocks {
			ok = ok && len(b.Tiers) > 0 && b.Tiers[0] == tierName
		}
		if ok {
			return blocks, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the index to show every block of %s in %s: %w", t.Stream, tierName, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// placeBlock demotes b out of the tiers hotter than tierName, or promotes it
// into tierName when no tier as hot holds it.
func placeBlock(ctx context.Context, nc *nats.Conn, t Target, b index.BlockMeta, tierName string) error {
	held := append([]string(nil), b.Tiers...)
	for len(held) == 0 || held[0] != tierName {
		verb := "demote"
		if !containsString(held, tierName) {
			verb = "promote"
		}
		var out service.MoveReply
		subj := t.prefix() + ".admin." + verb
		if err := ntsRequest(ctx, nc, subj, service.MoveRequest{Stream: t.Stream, FirstSeq: b.FirstSeq}, &out); err != nil {
			return fmt.Errorf("place block at seq %d in %s: %w", b.FirstSeq, tierName, err)
		}
		if len(out.Errors) > 0 || len(out.Blocks) != 1 {
			return fmt.Errorf("%w: %s of block at seq %d: %+v", ErrCheck, verb, b.FirstSeq, out)
		}
		moved := out.Blocks[0].Tier
		switch {
		case verb == "demote" && len(held) > 0 && moved == held[0]:
			held = held[1:]
		case verb == "promote" && !containsString(held, moved):
			held = append([]string{moved}, held...)
		default:
			return fmt.Errorf("%w: %s of block at seq %d held in %v moved %q: no tier %q above it",
				ErrCheck, verb, b.FirstSeq, held, moved, tierName)
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// getMsg reads message seq with msg.get and checks the reply: no error,
// the stream and sequence asked for, tierName in Nts-Tier (unless empty)
// and, when t.Size is set, the payload published.
func getMsg(ctx context.Context, nc *nats.Conn, t Target, tierName string, seq uint64) error {
	subj := client.GetSubject(t.prefix(), t.Stream, seq)
	m, err := request(ctx, nc, subj, nil)
	if err != nil {
		return err
	}
	if err := errorReply(subj, m); err != nil {
		return err
	}
	return checkMsg(t, tierName, seq, m)
}

// checkMsg checks a message reply: stream, sequence, tier and payload.
func checkMsg(t Target, tierName string, seq uint64, m *nats.Msg) error {
	if s := m.Header.Get(client.HeaderStream); s != t.Stream {
		return fmt.Errorf("%w: seq %d: %s %q, want %q", ErrCheck, seq, client.HeaderStream, s, t.Stream)
	}
	if s := m.Header.Get(client.HeaderSequence); s != strconv.FormatUint(seq, 10) {
		return fmt.Errorf("%w: seq %d: %s %q", ErrCheck, seq, client.HeaderSequence, s)
	}
	if tierName != "" {
		if s := m.Header.Get(client.HeaderTier); s != tierName {
			return fmt.Errorf("%w: seq %d served by tier %q, want %q", ErrCheck, seq, s, tierName)
		}
	}
	if t.Size != 0 {
		return checkSeqPayload(seq, t.Size, m.Data)
	}
	return nil
}

// TouchBlocks reads the first message of each block from tierName, so that
// the replica has opened every block there (read its footer) before
// PointReads times reads.
func TouchBlocks(ctx context.Context, nc *nats.Conn, t Target, tierName string, blocks []index.BlockMeta) error {
	for _, b := range blocks {
		if err := getMsg(ctx, nc, t, tierName, b.FirstSeq); err != nil {
			return err
		}
	}
	return nil
}

// PointReads returns a Probe that reads one message of t's stream with
// msg.get, a seq drawn at random (seeded by seed) from the sequence ranges
// of blocks, and checks its reply: no error, the message asked for, served
// by tierName (any tier when empty), and the payload published when t.Size
// is set. The blocks must have no gaps: a seq not archived fails the probe.
// Place the blocks first, and TouchBlocks them to time reads with their
// footers cached. The Probe reads over every frame of every block alike, so
// a cache of recent frames helps it only as much as it helps a reader of
// random messages.
func PointReads(nc *nats.Conn, t Target, tierName string, blocks []index.BlockMeta, seed uint64) (Probe, error) {
	if len(blocks) == 0 {
		return nil, fmt.Errorf("perf: point reads of %s over no blocks", t.Stream)
	}
	ends := make([]uint64, len(blocks)) // ends[i]: seqs in blocks[:i+1]
	var total uint64
	for i, b := range blocks {
		if b.LastSeq < b.FirstSeq {
			return nil, fmt.Errorf("perf: block %s has seqs %d to %d", b.Key, b.FirstSeq, b.LastSeq)
		}
		total += b.LastSeq - b.FirstSeq + 1
		ends[i] = total
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(blocks))))
	return func(ctx context.Context) error {
		k := rng.Uint64N(total)
		i := sort.Search(len(ends), func(i int) bool { return ends[i] > k })
		seq := blocks[i].LastSeq - (ends[i] - 1 - k)
		return getMsg(ctx, nc, t, tierName, seq)
	}, nil
}
