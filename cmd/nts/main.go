// Command nts is tiered storage for NATS JetStream: it archives streams,
// KV buckets and object stores into compressed blocks on memory, local file
// and S3-compatible tiers, and serves them back over NATS.
//
// Usage:
//
//	nts serve [flags]     run a replica (an embedded NATS server when no --nats-url)
//	nts bench [flags]     measure nts against plain JetStream and print the table
//	nts version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/nats-tiered/nts/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "nts:", err)
		}
		os.Exit(2)
	}
}

const usage = `nts — tiered storage for NATS JetStream

Usage:
  nts serve [flags]   run a replica; with no --nats-url, on an embedded NATS server
  nts bench [flags]   measure nts against plain JetStream, print one table
  nts version         print the version

Run 'nts serve -h' or 'nts bench -h' for their flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "nts", service.Version())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		config  = fs.String("config", "", "YAML configuration file (see the README's configuration reference)")
		dataDir = fs.String("data-dir", "", "directory for local data (default ./nts-data)")
		listen  = fs.String("listen", "", "embedded NATS server client address (default 0.0.0.0:4222)")
		natsURL = fs.String("nats-url", "", "use this NATS server instead of an embedded one")
		creds   = fs.String("creds", "", "NATS credentials file")
		nkey    = fs.String("nkey", "", "NATS NKey seed file")
		tlsCert = fs.String("tls-cert", "", "client TLS certificate")
		tlsKey  = fs.String("tls-key", "", "client TLS key")
		tlsCA   = fs.String("tls-ca", "", "TLS CA certificate to verify the server")
		level   = fs.String("log-level", "info", "debug, info, warn or error")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	var cfg service.Config
	if *config != "" {
		var err error
		if cfg, err = service.ReadConfig(*config); err != nil {
			return err
		}
	}
	// Flags win over the file.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	str := func(flag string, dst *string, v string) {
		if set[flag] {
			*dst = v
		}
	}
	str("data-dir", &cfg.DataDir, *dataDir)
	str("listen", &cfg.NATS.Embedded.Listen, *listen)
	str("nats-url", &cfg.NATS.URL, *natsURL)
	str("creds", &cfg.NATS.Creds, *creds)
	str("nkey", &cfg.NATS.NKey, *nkey)
	str("tls-cert", &cfg.NATS.TLS.Cert, *tlsCert)
	str("tls-key", &cfg.NATS.TLS.Key, *tlsKey)
	str("tls-ca", &cfg.NATS.TLS.CA, *tlsCA)
	cfg.Complete()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if limit, ok := memoryLimit(cfg); ok {
		debug.SetMemoryLimit(limit)
		log.Debug("Go memory limit set from the memory tier's bound", "bytes", limit)
	}
	return service.Run(ctx, cfg, log)
}

// memoryHeadroom is what the memory limit leaves a replica beyond its
// memory tier: the block being filled (the sealed ones being written are
// in the tier already), the messages fetched ahead of it (4 MiB at most
// while max_payload is below 4 MiB), footers, connection buffers, the
// garbage collector's slack. 48 MiB
// left the peak RSS of `nts bench`'s replica over a 64 MiB tier at
// 127–133 MiB; 40 MiB at 122–131, in the same time.
const memoryHeadroom = 40 << 20

// memoryLimit returns the soft memory limit (debug.SetMemoryLimit) of an
// nts serve process: the memory tier's bound plus memoryHeadroom, so that
// the garbage collector keeps the heap near what the tier holds rather
// than letting it grow to twice that (GOGC=100). It sets none when
// GOMEMLIMIT is set, when the memory tier is off or unbounded, or when the
// process also runs the embedded NATS server, whose memory it does not
// bound.
func memoryLimit(cfg service.Config) (int64, bool) {
	m := cfg.Tiers.Memory
	if os.Getenv("GOMEMLIMIT") != "" || !m.On() || m.MaxBytes <= 0 || cfg.NATS.URL == "" {
		return 0, false
	}
	return int64(m.MaxBytes) + memoryHeadroom, true
}
