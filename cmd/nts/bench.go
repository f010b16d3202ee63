package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/service"
)

// benchSizes are the sizes of one nts bench run.
type benchSizes struct {
	// drainSmall and drainLarge are the messages of the 256 B and 4 KiB
	// backlogs; drainRounds how often each is drained each way.
	drainSmall, drainLarge, drainRounds int
	// reads is the messages (of readSize bytes) of the stream read back;
	// warmup, samples and blobSamples the rounds of each latency
	// measurement.
	reads, warmup, samples, blobSamples int
	// scaleSmall and scaleLarge are the blocks of the two synthetic
	// archives, scaleRead how many of them the reads are drawn from.
	scaleSmall, scaleLarge, scaleRead int
	// logs is the JSON log lines archived for the stored/raw figure.
	logs int
	// kvKeys is the keys of the KV bucket read back; objSize the size of
	// the object read back, objRounds how often it is read each way.
	kvKeys, objSize, objRounds int
	// rssBound is the memory tier's bound in the peak RSS measurement.
	rssBound int64
}

// readSize is the payload of the messages read back.
const readSize = 1024

// Sizes of a default run (under 5 minutes on 2 cores) and of a --quick one
// (under 1 minute).
var (
	defaultSizes = benchSizes{
		drainSmall: 200_000, drainLarge: 50_000, drainRounds: 5,
		reads: 100_000, warmup: 50, samples: 2000, blobSamples: 500,
		scaleSmall: 1_000, scaleLarge: 100_000, scaleRead: 1_000,
		logs: 40_000, rssBound: 64 << 20,
		kvKeys: 1_000_000, objSize: 20 << 20, objRounds: 15,
	}
	quickSizes = benchSizes{
		drainSmall: 50_000, drainLarge: 12_500, drainRounds: 3,
		reads: 20_000, warmup: 20, samples: 500, blobSamples: 200,
		scaleSmall: 1_000, scaleLarge: 10_000, scaleRead: 1_000,
		logs: 20_000, rssBound: 16 << 20,
		kvKeys: 100_000, objSize: 20 << 20, objRounds: 5,
	}
)

// shrinkSizes, when set, changes the sizes of a run after the flags chose
// them: the command's tests make their runs smaller still.
var shrinkSizes func(*benchSizes)

// benchOptions are the flags of nts bench.
type benchOptions struct {
	quick, json          bool
	natsURL, s3URL       string
	accessKey, secretKey string
	versitygw            string
}

const benchUsage = `Usage: nts bench [flags]

Measures nts against plain JetStream, each figure against its reference in
the same run, and prints one table (or --json). With no --nats-url and no
--s3-url it starts everything it needs: an embedded nats-server with
JetStream in a temporary directory, versitygw as the S3 server on
127.0.0.1 (on PATH, else the version pinned in the repository's tools
module, built with the go command on first use) and the nts replicas
measured; all of it is removed when it ends, also on Ctrl-C. Progress goes
to stderr.

Flags:
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	var o benchOptions
	fs.BoolVar(&o.quick, "quick", false, "smaller backlogs and fewer samples: under a minute")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.StringVar(&o.natsURL, "nats-url", "", "measure against this NATS server (JetStream enabled) instead of an embedded one")
	fs.StringVar(&o.s3URL, "s3-url", "", "measure against this S3 bucket, s3://bucket[/prefix]?endpoint=...&region=...&path_style=true, instead of a local server")
	fs.StringVar(&o.accessKey, "s3-access-key", "", "static access key for --s3-url (default: the AWS environment and credential chain)")
	fs.StringVar(&o.secretKey, "s3-secret-key", "", "static secret key for --s3-url")
	fs.StringVar(&o.versitygw, "versitygw", "", "versitygw executable to start as the S3 server (default: on PATH, else the pinned build of the tools module, built when run from the repository)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if (o.accessKey == "") != (o.secretKey == "") {
		return errors.New("bench: --s3-access-key and --s3-secret-key go together")
	}
	if o.s3URL == "" && (o.accessKey != "" || o.secretKey != "") {
		return errors.New("bench: --s3-access-key and --s3-secret-key need --s3-url")
	}
	sz := defaultSizes
	if o.quick {
		sz = quickSizes
	}
	if shrinkSizes != nil {
		shrinkSizes(&sz)
	}
	rep, err := runBench(ctx, o, sz, commandLine(args), stderr)
	if rep == nil {
		return err
	}
	var werr error
	if o.json {
		werr = rep.writeJSON(stdout)
	} else {
		werr = rep.writeText(stdout)
	}
	return errors.Join(err, werr)
}

// commandLine is the command run, for the report, with the secret key's
// value redacted.
func commandLine(args []string) string {
	out := []string{"nts", "bench"}
	redact := false
	for _, a := range args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case redact:
			a, redact = "REDACTED", false
		case strings.HasPrefix(a, "-") && name == "s3-secret-key" && hasValue:
			a = a[:strings.Index(a, "=")+1] + "REDACTED"
		case strings.HasPrefix(a, "-") && name == "s3-secret-key":
			redact = true
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// benchRun is the state of one nts bench run.
type benchRun struct {
	sz     benchSizes
	env    *perf.Env
	nc     *nats.Conn
	js     jetstream.JetStream
	stderr io.Writer
	log    *slog.Logger
	// failed counts the measurements that failed (rows n/a for an error).
	failed int
	// madeList is what the run made on the NATS server: kind and name.
	madeList [][2]string
}

// runBench starts the environment, measures every figure and returns the
// report. A measurement that fails leaves its rows n/a with the error and
// makes the returned error non-nil; the report is returned all the same,
// unless the environment could not start or ctx ended.
func runBench(ctx context.Context, o benchOptions, sz benchSizes, command string, stderr io.Writer) (*report, error) {
	start := time.Now()
	b := &benchRun{sz: sz, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	done := b.step("starting NATS and S3")
	env, err := perf.StartEnv(ctx, perf.EnvOptions{
		NATSURL: o.natsURL, S3URL: o.s3URL, AccessKey: o.accessKey, SecretKey: o.secretKey,
		Versitygw: o.versitygw, Log: b.log,
	})
	done()
	if err != nil {
		return nil, err
	}
	b.env = env
	fmt.Fprintf(stderr, "NATS: %s\nS3: %s\n", env.NATS, env.S3)
	rep := &report{
		Date: start.UTC().Format("2006-01-02"), Command: command, Version: service.Version(),
		Hardware: machine(), NATS: env.NATS, S3: env.S3, Quick: o.quick,
	}
	err = b.measure(ctx, rep)
	done = b.step("cleaning up")
	if cerr := env.Close(); cerr != nil {
		fmt.Fprintln(stderr, "nts bench: cleaning up:", cerr)
	}
	done()
	rep.Seconds = time.Since(start).Seconds()
	switch {
	case err != nil:
		return nil, err
	case b.failed > 0:
		return rep, fmt.Errorf("bench: %d measurements failed (their rows say why)", b.failed)
	}
	return rep, nil
}

// measure connects to the environment and takes every row of rep.
func (b *benchRun) measure(ctx context.Context, rep *report) error {
	var err error
	if b.nc, err = nats.Connect(b.env.NATSURL, nats.Name("nts-bench")); err != nil {
		return err
	}
	defer b.nc.Close()
	if b.js, err = jetstream.New(b.nc); err != nil {
		return err
	}
	if b.env.Embedded == nil {
		b.env.OnClose(b.deleteMade)
	}
	for _, phase := range []func(context.Context) []row{b.drainRows, b.readRows, b.kvObjRows, b.rssRows} {
		rep.Rows = append(rep.Rows, phase(ctx)...)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// step prints what is starting to stderr and returns the function that
// ends the line with the time it took.
func (b *benchRun) step(format string, args ...any) func() {
	fmt.Fprintf(b.stderr, format+"… ", args...)
	start := time.Now()
	return func() { fmt.Fprintf(b.stderr, "%.1f s\n", time.Since(start).Seconds()) }
}

// failedRows returns the rows of ids n/a for err, counting the failure.
func (b *benchRun) failedRows(err error, specs ...rowSpec) []row {
	b.failed++
	if !errors.Is(err, context.Canceled) {
		fmt.Fprintf(b.stderr, "nts bench: %s: %v\n", specs[0].name, err)
	}
	out := make([]row, len(specs))
	for i, s := range specs {
		out[i] = notMeasured(s.id, s.name, "measurement failed: "+err.Error(), s.target)
	}
	return out
}

// rowSpec names a row before it is measured.
type rowSpec struct {
	id, name string
	target   *target
}

// name returns a name for a stream, bucket or subject prefix of this run:
// base, made unique to the run on a shared NATS server.
func (b *benchRun) name(base string) string { return b.env.Name(base) }

// serviceConfig returns the configuration of an in-process nts replica of
// this run, before Complete: its own data directory, index bucket and
// subject prefix (so that it meets no other replica), the blob tier on
// the run's S3 bucket, and max_linger short enough that a backlog's last
// block seals at once.
func (b *benchRun) serviceConfig(dir, tag string, streams ...string) service.Config {
	cfg := service.Config{DataDir: dir}
	cfg.NATS.URL = b.env.NATSURL
	cfg.Index.Bucket = b.name("nts_bench_" + tag)
	cfg.Service.Prefix = b.name("ntsbench_" + tag)
	cfg.Service.QueueGroup = cfg.Service.Prefix
	cfg.Tiers.Blob.URL = b.env.BlobURLUnder(tag)
	cfg.Tiers.Blob.AccessKey, cfg.Tiers.Blob.SecretKey = b.env.BlobOptions.AccessKey, b.env.BlobOptions.SecretKey
	cfg.Block.MaxLinger = service.Duration(20 * time.Millisecond)
	// No eviction or orphan sweep runs during a measurement.
	cfg.Tiers.PolicyInterval = service.Duration(time.Hour)
	for _, s := range streams {
		cfg.Streams = append(cfg.Streams, service.StreamSpec{Name: s})
	}
	return cfg
}

// machine describes this machine.
func machine() hardware {
	h := hardware{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for line := range strings.Lines(string(b)) {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				h.MemBytes = kb << 10
				break
			}
		}
	}
	return h
}

// Kinds of what a run makes on the NATS server.
const (
	kindStream = "stream"
	kindBucket = "bucket" // an index bucket, with its lock bucket
)

// made records a stream or index bucket the run makes, for deleteMade.
func (b *benchRun) made(kind, name string) {
	b.madeList = append(b.madeList, [2]string{kind, name})
}

// deleteMade deletes from a NATS server the run did not start the streams
// and buckets it made there, on a connection of its own: the run's is
// closed by then.
func (b *benchRun) deleteMade(ctx context.Context) error {
	nc, err := nats.Connect(b.env.NATSURL, nats.Name("nts-bench-cleanup"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var errs []error
	gone := func(err error) bool {
		return err == nil || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
	}
	for _, m := range b.madeList {
		switch m[0] {
		case kindStream:
			if err := js.DeleteStream(ctx, m[1]); !gone(err) {
				errs = append(errs, fmt.Errorf("delete stream %s: %w", m[1], err))
			}
		case kindBucket:
			for _, bucket := range []string{m[1], m[1] + "_locks"} {
				if err := js.DeleteKeyValue(ctx, bucket); !gone(err) {
					errs = append(errs, fmt.Errorf("delete bucket %s: %w", bucket, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
