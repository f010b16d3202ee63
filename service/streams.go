package service

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
)

// mirrorPrefix names the Limits-retention mirrors nts makes of WorkQueue
// streams; they are archived under the original stream's name.
const mirrorPrefix = "NTS_MIRROR_"

// archiver finds the streams to archive and runs a leader campaign for each:
// every replica campaigns, the lock holder ingests. Safe for concurrent use.
type archiver struct {
	nc *nats.Conn
	js jetstream.JetStream
	// data is JetStream on the ingest's own connection (js when nil): the
	// consumers fetch through it.
	data   jetstream.JetStream
	ix     *index.Index
	ctrl   *tier.Controller
	cfg    Config
	id     string
	log    *slog.Logger
	rescan time.Duration
	// orphanGrace is how old an unlisted object must be before sweep
	// deletes it.
	orphanGrace time.Duration

	mu      sync.Mutex
	running map[string]context.CancelFunc
	stats   map[string]*StreamStats
	wg      sync.WaitGroup
}

// run scans for streams at start, on every stream-created advisory and every
// rescan interval, until ctx is done; then it waits for every ingest.
//
// An advisory names the stream created, which is started from the name at
// once: the server may send the advisory before the stream shows in its
// stream list, so a scan on the advisory alone could miss the stream until
// the next rescan. A scan follows shortly after all the same, for streams
// whose advisories were dropped.
func (a *archiver) run(ctx context.Context) {
	created := make(chan string, 64)
	sub, err := a.nc.Subscribe(streamCreatedAdvisory+">", func(m *nats.Msg) {
		select {
		case created <- strings.TrimPrefix(m.Subject, streamCreatedAdvisory):
		default: // the follow-up scan finds it
		}
	})
	if err != nil {
		a.log.Warn("no stream advisories; new streams are found by rescans only", "err", err)
	} else {
		defer sub.Unsubscribe()
	}
	t := time.NewTicker(a.rescan)
	defer t.Stop()
	followUp := time.NewTimer(0)
	defer followUp.Stop()
	for {
		select {
		case <-ctx.Done():
			a.wg.Wait()
			return
		case name := <-created:
			if pol, ok := a.policyFor(name); ok {
				a.start(ctx, pol)
			}
			followUp.Reset(time.Second)
		case <-followUp.C:
			a.scan(ctx)
		case <-t.C:
			a.scan(ctx)
		}
	}
}

// streamCreatedAdvisory prefixes the subject of the advisory the server
// sends when a stream is created; the stream's name follows.
const streamCreatedAdvisory = "$JS.EVENT.ADVISORY.STREAM.CREATED."

// scan starts a campaign for every selected stream that has none.
func (a *archiver) scan(ctx context.Context) {
	names := a.js.StreamNames(ctx)
	for name := range names.Name() {
		if pol, ok := a.policyFor(name); ok {
			a.start(ctx, pol)
		}
	}
	if err := names.Err(); err != nil && ctx.Err() == nil {
		a.log.Warn("listing streams", "err", err)
	}
}

func (a *archiver) start(ctx context.Context, pol policy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.running[pol.stream]; ok {
		return
	}
	st := a.stats[pol.stream]
	if st == nil {
		st = &StreamStats{}
		a.stats[pol.stream] = st
	}
	sctx, cancel := context.WithCancel(ctx)
	a.running[pol.stream] = cancel
	log := a.log.With("stream", pol.stream)
	data := a.data
	if data == nil {
		data = a.js
	}
	in := &ingest{js: data, ctl: a.js, ix: a.ix, ctrl: a.ctrl, id: a.id, log: log, pol: pol, stats: st, flushTimeout: 30 * time.Second}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.ix.Campaign(sctx, pol.stream, a.id, func(lctx context.Context) error {
			err := in.run(lctx)
			switch {
			case errors.Is(err, ErrStreamGone):
				log.Warn("stream deleted: ingest stopped, its archive stays readable")
				cancel()
			case errors.Is(err, ErrIncarnations):
				log.Error("not archiving the stream", "err", err)
				cancel()
			case errors.Is(err, index.ErrFenced):
				log.Warn("another replica committed for this stream: stepping down", "err", err)
			}
			return err
		})
		if err != nil {
			log.Error("campaign", "err", err)
		}
		// A stream that went away may come back: let a later scan start it.
		a.mu.Lock()
		if ctx.Err() == nil {
			delete(a.running, pol.stream)
		}
		a.mu.Unlock()
		cancel()
	}()
}

// policyFor resolves the archive policy of a stream, and whether it is to be
// archived at all: not nts's own buckets, not mirrors (unless configured),
// and only the configured streams when some are listed.
func (a *archiver) policyFor(name string) (policy, bool) {
	bucket := a.cfg.Index.Bucket
	if name == "KV_"+bucket || strings.HasPrefix(name, "KV_"+bucket+"_") || strings.HasPrefix(name, mirrorPrefix) {
		return policy{}, false
	}
	var spec *StreamSpec
	for i := range a.cfg.Streams {
		if matches(a.cfg.Streams[i].Name, name) {
			spec = &a.cfg.Streams[i]
			break
		}
	}
	if len(a.cfg.Streams) > 0 && spec == nil {
		return policy{}, false
	}
	if tier.ValidateStream(name) != nil {
		a.log.Warn("stream name cannot be archived", "stream", name)
		return policy{}, false
	}
	bc := a.cfg.Block
	p := policy{stream: name, source: name, consumer: "nts-" + name, kind: kindOf(name)}
	if spec != nil {
		if spec.Kind != "" {
			p.kind = spec.Kind
		}
		p.mirror = spec.Mirror
		if spec.Consumer != "" {
			p.consumer = spec.Consumer
		}
		if spec.Block != nil {
			bc = mergeBlock(bc, *spec.Block)
		}
	}
	if bc.FrameSize == 0 {
		bc.FrameSize = DefaultFrameSize
		if p.kind == "kv" {
			bc.FrameSize = KVFrameSize
		}
	}
	codec, _ := block.ParseCodec(bc.Compression) // validated with the config
	p.block = block.Options{Stream: name, Codec: codec, TargetSize: int64(bc.TargetSize), FrameSize: int(bc.FrameSize)}
	p.linger = time.Duration(bc.MaxLinger)
	return p, true
}

// Frame sizes of a stream whose configuration sets none (BlockConfig).
const (
	DefaultFrameSize = 32 << 10
	KVFrameSize      = 16 << 10
)

// matches reports whether a configured stream name or pattern selects name.
func matches(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// kindOf tells a stream's kind from its name.
func kindOf(name string) string {
	switch {
	case strings.HasPrefix(name, "KV_"):
		return "kv"
	case strings.HasPrefix(name, "OBJ_"):
		return "obj"
	}
	return "plain"
}

func mergeBlock(base, o BlockConfig) BlockConfig {
	if o.TargetSize != 0 {
		base.TargetSize = o.TargetSize
	}
	if o.FrameSize != 0 {
		base.FrameSize = o.FrameSize
	}
	if o.MaxLinger != 0 {
		base.MaxLinger = o.MaxLinger
	}
	if o.Compression != "" {
		base.Compression = o.Compression
	}
	return base
}

// Stats returns a snapshot of the stats of every stream seen.
func (a *archiver) Stats() map[string]*StreamStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]*StreamStats, len(a.stats))
	for k, v := range a.stats {
		out[k] = v
	}
	return out
}
