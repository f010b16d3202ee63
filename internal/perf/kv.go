package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

// KVKey is the key KVBacklog puts i-th (from 0): "k" and i in seven digits.
func KVKey(i int) string { return fmt.Sprintf("k%07d", i) }

// KVBacklog creates KV bucket (history 1) and puts n keys into it, KVKey(i)
// with value SeqPayload(i+1, size), in order, so that key i is at
// revision i+1. The bucket must be new: it checks that its stream then
// holds exactly revisions 1 to n. It publishes with PublishAsync on the
// keys' subjects, as kv.Put would one at a time, far faster.
func KVBacklog(ctx context.Context, js jetstream.JetStream, bucket string, n, size int) (jetstream.KeyValue, error) {
	if size < seqPayloadMin || n < 1 {
		return nil, fmt.Errorf("perf: KV backlog of %d keys of %d bytes: want 1 or more of at least %d", n, size, seqPayloadMin)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", bucket, err)
	}
	for i := range n {
		if _, err := js.PublishAsync("$KV."+bucket+"."+KVKey(i), SeqPayload(uint64(i+1), size)); err != nil {
			return nil, err
		}
		if (i+1)%4096 == 0 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, err
	}
	si, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	info := si.State
	if info.Msgs != uint64(n) || info.FirstSeq != 1 || info.LastSeq != uint64(n) {
		return nil, fmt.Errorf("perf: KV bucket %s holds %d revisions, %d to %d, after putting %d keys in a new bucket",
			bucket, info.Msgs, info.FirstSeq, info.LastSeq, n)
	}
	return kv, nil
}

// NativeKVGets returns a Probe that gets a key of KVBacklog's bucket with
// jetstream's KeyValue.Get, a key drawn at random (seeded by seed) from the
// n put, and checks the entry: the revision and value put.
func NativeKVGets(kv jetstream.KeyValue, n, size int, seed uint64) Probe {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	return func(ctx context.Context) error {
		i := rng.IntN(n)
		e, err := kv.Get(ctx, KVKey(i))
		if err != nil {
			return fmt.Errorf("kv.Get %s: %w", KVKey(i), err)
		}
		if e.Revision() != uint64(i+1) {
			return fmt.Errorf("%w: kv.Get %s: revision %d, want %d", ErrCheck, KVKey(i), e.Revision(), i+1)
		}
		return checkSeqPayload(uint64(i+1), size, e.Value())
	}
}

// KVGets returns a Probe that gets a key of KVBacklog's bucket archived by
// an nts service with kv.get, a key drawn at random (seeded by seed) from
// the n put, and checks the reply: no error, the revision and value put,
// operation PUT, served by tierName (any tier when empty). Its seed draws
// the keys NativeKVGets draws with the same seed.
func KVGets(nc *nats.Conn, prefix, bucket string, n, size int, tierName string, seed uint64) Probe {
	if prefix == "" {
		prefix = client.DefaultPrefix
	}
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	return func(ctx context.Context) error {
		i := rng.IntN(n)
		subj := client.KVGetSubject(prefix, bucket, KVKey(i))
		m, err := request(ctx, nc, subj, nil)
		if err != nil {
			return err
		}
		if err := errorReply(subj, m); err != nil {
			return err
		}
		if s := m.Header.Get(client.HeaderSequence); s != strconv.Itoa(i+1) {
			return fmt.Errorf("%w: %s: revision %q, want %d", ErrCheck, subj, s, i+1)
		}
		if s := m.Header.Get(client.HeaderKVOperation); s != client.KVPut {
			return fmt.Errorf("%w: %s: operation %q", ErrCheck, subj, s)
		}
		if tierName != "" {
			if s := m.Header.Get(client.HeaderTier); s != tierName {
				return fmt.Errorf("%w: %s served by tier %q, want %q", ErrCheck, subj, s, tierName)
			}
		}
		return checkSeqPayload(uint64(i+1), size, m.Data)
	}
}
