package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/blob"
)

// Run runs one nts replica as cfg says until ctx is cancelled, then shuts
// down in order and returns. It returns an error only when it cannot start.
// It logs to log; nil logs nothing.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var srv *server.Server
	url := cfg.NATS.URL
	if url == "" {
		var err error
		srv, err = StartEmbedded(cfg.NATS.Embedded, log)
		if err != nil {
			return err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
			log.Info("embedded NATS server stopped")
		}()
		url = srv.ClientURL()
		log.Info("embedded NATS server listening", "url", url, "store_dir", cfg.NATS.Embedded.StoreDir)
	}
	// Reconnect well within a lock renewal's deadline (two thirds of the
	// TTL), so a short NATS restart does not cost a stream's leadership.
	reconnect := min(2*time.Second, time.Duration(cfg.Index.LockTTL)/6)
	nc, err := Connect(cfg.NATS, url, log, nats.ReconnectWait(reconnect))
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn("draining the NATS connection", "err", err)
		}
		for nc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	// The ingest fetches on a connection of its own: a consumer's flood of
	// messages would otherwise queue the index's and the locks' replies
	// behind megabytes of deliveries in the server's outbound buffer for
	// this client, stalling commits, acks and lock renewals.
	dnc, err := Connect(cfg.NATS, url, log, nats.ReconnectWait(reconnect), nats.Name(cfg.NATS.Name+"-ingest"))
	if err != nil {
		return err
	}
	defer func() {
		if err := dnc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn("draining the NATS ingest connection", "err", err)
		}
		for dnc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	ctrl, err := OpenTiers(ctx, cfg, log)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	data, err := jetstream.New(dnc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if cfg.Index.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	ix, err := index.Open(ctx, js, index.Options{
		Bucket: cfg.Index.Bucket, Replicas: cfg.Index.Replicas, Storage: storage,
		LockTTL: time.Duration(cfg.Index.LockTTL), MaxBytes: int64(cfg.Index.MaxBytes), Logger: log,
	})
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMaxBytesRequired:
		return fmt.Errorf("open the index: %w (the account requires max_bytes on every stream: set index.max_bytes)", err)
	case err != nil:
		return fmt.Errorf("open the index: %w", err)
	}
	defer ix.Close()
	svc, err := newAPI(nc, cfg, log)
	if err != nil {
		return err
	}
	defer svc.stop()
	id := cfg.Service.InstanceID
	if id == "" {
		id = svc.instanceID()
	}
	names := []string{}
	for _, l := range ctrl.Levels() {
		names = append(names, l.Tier.Name())
	}
	arch := &archiver{
		nc: nc, js: js, data: data, ix: ix, ctrl: ctrl, cfg: cfg, id: id, log: log, rescan: 30 * time.Second,
		orphanGrace: orphanGrace(cfg),
		running:     map[string]context.CancelFunc{}, stats: map[string]*StreamStats{},
	}
	svc.js, svc.ix, svc.ctrl, svc.arch, svc.id = js, ix, ctrl, arch, id
	if err := svc.start(); err != nil {
		return err
	}
	log.Info("nts ready", "instance", id, "nats", nc.ConnectedUrlRedacted(), "tiers", names, "index", cfg.Index.Bucket)
	// Shutdown stops the micro service (draining its endpoints and the
	// requests in flight) before the ingest.
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIngest()
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			svc.stop()
		case <-ingestCtx.Done():
		}
		stopIngest()
	})
	wg.Go(func() { arch.lifecycle(ingestCtx, time.Duration(cfg.Tiers.PolicyInterval)) })
	arch.run(ingestCtx) // returns when ingestCtx is done and every ingest has sealed its partial block
	wg.Wait()
	log.Info("stopped")
	return nil
}

// orphanGrace is how long an object the index does not list is left alone:
// long enough for any write in flight when its writer lost leadership to
// have been committed or abandoned (several lock TTLs and policy rounds).
func orphanGrace(cfg Config) time.Duration {
	return max(time.Minute, 6*time.Duration(cfg.Index.LockTTL)+2*time.Duration(cfg.Tiers.PolicyInterval))
}

// Connect connects to NATS with the credentials and TLS settings of cfg,
// and extra options last.
func Connect(cfg NATSConfig, url string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, fmt.Errorf("%w: nats.nkey: %v", ErrConfig, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLS.Cert, cfg.TLS.Key))
	}
	if cfg.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLS.CA))
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// OpenTiers opens the enabled tiers, hottest first, under one controller.
func OpenTiers(ctx context.Context, cfg Config, log *slog.Logger) (*tier.Controller, error) {
	var levels []tier.Level
	var ctrl atomic.Pointer[tier.Controller]
	t := cfg.Tiers
	if t.Memory.On() {
		mem := tier.NewMemory(int64(t.Memory.MaxBytes), t.Memory.MaxBlocks, tier.OnEvict(func(key string) {
			if c := ctrl.Load(); c != nil {
				c.NoteEvicted("memory", key)
			}
		}))
		levels = append(levels, tier.Level{Tier: mem, Policy: t.Memory.policy().tier()})
	}
	if t.File.On() {
		f, err := tier.NewFile(t.File.Dir)
		if err != nil {
			return nil, fmt.Errorf("file tier: %w", err)
		}
		levels = append(levels, tier.Level{Tier: f, Policy: t.File.policy().tier()})
	}
	if t.Blob.On() {
		b, err := blob.Open(ctx, t.Blob.URL, blob.Options{AccessKey: t.Blob.AccessKey, SecretKey: t.Blob.SecretKey})
		if err != nil {
			return nil, fmt.Errorf("blob tier: %w", err)
		}
		levels = append(levels, tier.Level{Tier: b, Policy: t.Blob.policy().tier()})
	}
	c, err := tier.NewController(levels, tier.WithLogger(log))
	if err != nil {
		return nil, err
	}
	ctrl.Store(c)
	return c, nil
}

func (p TierPolicy) tier() tier.Policy {
	return tier.Policy{MaxAge: time.Duration(p.MaxAge), MaxBytes: int64(p.MaxBytes), MaxBlocks: p.MaxBlocks}
}

// errCodeMaxBytesRequired is the JetStream API error of an account that
// requires max_bytes on every stream (nats-server's JSStreamMaxBytesRequired).
const errCodeMaxBytesRequired jetstream.ErrorCode = 10113
