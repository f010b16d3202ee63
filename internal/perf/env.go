package perf

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier/blob"
)

// ErrEnv is wrapped by the errors of StartEnv: an option that names no
// usable server, or a server that would not start.
var ErrEnv = errors.New("perf: environment")

// EnvOptions says what StartEnv starts and what it uses as it is given.
type EnvOptions struct {
	// NATSURL is a NATS server with JetStream to use; empty starts an
	// embedded nats-server with its store in the environment's directory.
	NATSURL string
	// S3URL is an s3:// URL (as the blob tier takes it) of an existing
	// bucket to use, with AccessKey and SecretKey as its static keys (empty:
	// the AWS default credential chain). Empty starts versitygw on the
	// loopback interface.
	S3URL                string
	AccessKey, SecretKey string
	// Versitygw is the versitygw executable to start; empty looks for one
	// (FindVersitygw). It is not used with S3URL.
	Versitygw string
	// Log receives the embedded server's warnings; nil discards them.
	Log *slog.Logger
}

// Env is what a measurement needs around nts: a NATS server with
// JetStream and an S3 bucket, started by StartEnv or given to it, with a
// directory of its own for data. Its fields are set by StartEnv and are
// read-only; Close is safe for concurrent use.
type Env struct {
	// ID is unique to the environment; Name and the S3 prefix use it so
	// that runs against shared servers do not meet.
	ID string
	// Dir is a new temporary directory, removed by Close.
	Dir string
	// NATSURL is the NATS server's client URL; NATS describes the server.
	NATSURL, NATS string
	// Embedded is the embedded nats-server, nil when NATSURL was given.
	Embedded *server.Server
	// BlobURL is the s3:// URL, under a prefix of its own, of the blob
	// tier; BlobOptions holds its credentials. S3 describes the server.
	BlobURL     string
	BlobOptions blob.Options
	S3          string

	s3srv    *versitygw // nil when the S3 URL was given
	cleanups []func(context.Context) error

	closeOnce sync.Once
	closeErr  error
}

// benchBucket is the bucket made on an S3 server StartEnv starts.
const benchBucket = "nts-bench"

// Credentials of the S3 server StartEnv starts: versitygw's root user.
const (
	benchAccessKey = "nts-bench-access"
	benchSecretKey = "nts-bench-secret"
	benchRegion    = "us-east-1"
)

// StartEnv starts or connects to the servers o describes and returns once
// they answer. On error, whatever it started is stopped again. The caller
// closes the Env.
func StartEnv(ctx context.Context, o EnvOptions) (_ *Env, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "nts-bench-")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnv, err)
	}
	e := &Env{ID: strings.ToLower(rand.Text()[:10]), Dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if err := e.startNATS(ctx, o, log); err != nil {
		return nil, err
	}
	if err := e.startS3(ctx, o); err != nil {
		return nil, err
	}
	return e, nil
}

// startNATS starts the embedded server, or checks the given one answers.
func (e *Env) startNATS(ctx context.Context, o EnvOptions, log *slog.Logger) error {
	if o.NATSURL != "" {
		nc, err := nats.Connect(o.NATSURL, nats.Name("nts-bench"))
		if err != nil {
			return fmt.Errorf("%w: NATS at %s: %v", ErrEnv, o.NATSURL, err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err == nil {
			_, err = js.AccountInfo(ctx)
		}
		if err != nil {
			return fmt.Errorf("%w: NATS at %s: JetStream: %v", ErrEnv, o.NATSURL, err)
		}
		e.NATSURL = o.NATSURL
		e.NATS = fmt.Sprintf("nats-server %s at %s (given)", nc.ConnectedServerVersion(), nc.ConnectedUrlRedacted())
		return nil
	}
	store := filepath.Join(e.Dir, "nats")
	srv, err := service.StartEmbedded(service.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: store}, log)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEnv, err)
	}
	e.Embedded = srv
	e.NATSURL = srv.ClientURL()
	e.NATS = fmt.Sprintf("embedded nats-server %s, JetStream in a temporary directory", server.VERSION)
	return ctx.Err()
}

// startS3 starts an S3 server and makes its bucket, or checks the given
// URL and gives the run a prefix of its own under it.
func (e *Env) startS3(ctx context.Context, o EnvOptions) error {
	if o.S3URL != "" {
		cfg, err := blob.ParseURL(o.S3URL, blob.Options{AccessKey: o.AccessKey, SecretKey: o.SecretKey})
		if err != nil {
			return fmt.Errorf("%w: S3 URL: %w", ErrEnv, err)
		}
		if cfg.Scheme != blob.SchemeS3 {
			return fmt.Errorf("%w: S3 URL %s: want an s3:// URL", ErrEnv, cfg)
		}
		e.BlobOptions = blob.Options{AccessKey: o.AccessKey, SecretKey: o.SecretKey}
		e.BlobURL = underPrefix(o.S3URL, "nts-bench-"+e.ID)
		e.S3 = fmt.Sprintf("S3 bucket %s at %s (given)", cfg.Bucket, endpointOrAWS(cfg.Options.Endpoint))
		url, opts := e.BlobURL, e.BlobOptions
		e.OnClose(func(ctx context.Context) error { return emptyBlob(ctx, url, opts) })
		return e.checkBlob(ctx)
	}
	bin, how := o.Versitygw, "given"
	if bin == "" {
		if bin, how = FindVersitygw(); bin == "" {
			return fmt.Errorf("%w: no S3 server to start: versitygw %s; put versitygw on PATH, run from the repository with the go command (the pinned one is built), or give --s3-url", ErrEnv, how)
		}
	}
	v, err := startVersitygw(ctx, bin, filepath.Join(e.Dir, "s3"))
	if err != nil {
		return fmt.Errorf("%w: versitygw %s: %v", ErrEnv, bin, err)
	}
	e.s3srv = v
	e.S3 = fmt.Sprintf("versitygw (%s: %s), posix backend, on %s", how, bin, v.endpoint())
	if err := createBucket(ctx, e.s3srv.endpoint(), benchBucket); err != nil {
		return fmt.Errorf("%w: %v", ErrEnv, err)
	}
	e.BlobOptions = blob.Options{AccessKey: benchAccessKey, SecretKey: benchSecretKey}
	q := url.Values{"endpoint": {e.s3srv.endpoint()}, "region": {benchRegion}, "path_style": {"true"}}
	e.BlobURL = (&url.URL{Scheme: blob.SchemeS3, Host: benchBucket, Path: "/nts-bench-" + e.ID, RawQuery: q.Encode()}).String()
	return e.checkBlob(ctx)
}

// checkBlob opens the blob tier's store once: the bucket must answer.
func (e *Env) checkBlob(ctx context.Context) error {
	if _, err := blob.Open(ctx, e.BlobURL, e.BlobOptions); err != nil {
		return fmt.Errorf("%w: %v", ErrEnv, err)
	}
	return nil
}

// emptyBlob deletes every object of the store url names.
func emptyBlob(ctx context.Context, url string, opts blob.Options) error {
	b, err := blob.Open(ctx, url, opts)
	if err != nil {
		return err
	}
	objs, err := b.List(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		if err := b.Delete(ctx, o.Key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func endpointOrAWS(endpoint string) string {
	if endpoint == "" {
		return "AWS S3"
	}
	return endpoint
}

// BlobURLUnder returns the URL of the prefix sub under the environment's
// blob store.
func (e *Env) BlobURLUnder(sub string) string { return underPrefix(e.BlobURL, sub) }

// underPrefix returns the s3:// URL raw (which blob.ParseURL accepted) with
// sub appended to its prefix, its parameters kept.
func underPrefix(raw, sub string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + sub
	u.RawPath = ""
	return u.String()
}

// Name returns base when the environment's NATS server is its own, and
// base with the environment's ID appended when it was given (and may hold
// other streams and buckets).
func (e *Env) Name(base string) string {
	if e.Embedded != nil {
		return base
	}
	return base + "_" + e.ID
}

// OnClose adds fn to what Close does first, last added first: deleting
// what a run made on servers that outlive it.
func (e *Env) OnClose(fn func(ctx context.Context) error) {
	e.cleanups = append(e.cleanups, fn)
}

// Close runs the OnClose functions, stops the servers StartEnv started and
// removes the directory. It is idempotent and returns the first call's
// result.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		var errs []error
		for i := len(e.cleanups) - 1; i >= 0; i-- {
			if err := e.cleanups[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if e.s3srv != nil {
			errs = append(errs, e.s3srv.close())
		}
		if e.Embedded != nil {
			e.Embedded.Shutdown()
			e.Embedded.WaitForShutdown()
		}
		errs = append(errs, os.RemoveAll(e.Dir))
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}
