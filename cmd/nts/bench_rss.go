package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nats-tiered/nts/internal/perf"
)

// benchChildEnv is set in the environment of the `nts serve` processes
// nts bench starts. The command's tests, whose executable is the test
// binary, run main's commands when they see it.
const benchChildEnv = "NTS_BENCH_CHILD"

// childStopTimeout bounds a child replica's shutdown after SIGINT.
const childStopTimeout = 30 * time.Second

var rssSpec = rowSpec{"peak-rss", "peak RSS of an nts serve process", nil}

// rssSize is the payload of the messages the peak RSS measurement archives.
const rssSize = 4096

// rssRows measures the peak RSS of a replica running as a process of its
// own (`nts serve`, this executable) while it archives a backlog of
// distinct incompressible 4 KiB messages, several times its memory tier's
// bound once stored, and then scans it back.
func (b *benchRun) rssRows(ctx context.Context) []row {
	bound := b.sz.rssBound
	spec := rssSpec
	spec.target = &target{Op: "<=", Ratio: float64(bound+64<<20) / float64(bound), Text: "≤ bound + 64 MiB"}
	n := b.sz.drainLarge
	stream := b.name("RSS")
	b.made(kindStream, stream)
	done := b.step("peak RSS: publishing %s × %d B", count(n), rssSize)
	err := perf.SeqBacklog(ctx, b.js, stream, n, rssSize)
	done()
	if err != nil {
		return b.failedRows(err, spec)
	}
	done = b.step("peak RSS: nts serve archiving them with a %s memory tier, then scanning them", binaryFormat(float64(bound)))
	rss, err := b.serveRSS(ctx, stream, n, bound, "m")
	done()
	if err != nil {
		return b.failedRows(err, spec)
	}
	r := measured(spec.id, spec.name, bytesFig("memory tier bound", bound), bytesFig("", rss), spec.target)
	r.Note = fmt.Sprintf("VmHWM of the nts serve process alone (not NATS, S3 or this command), archiving %s of incompressible messages through memory + file + S3 tiers and reading them back with msg.range",
		binaryFormat(float64(n*4096)))
	return []row{r}
}

// serveRSS runs `nts serve` over the environment, archiving stream (a
// SeqBacklog of rssSize-byte messages) with a
// memory tier of bound bytes, until it has archived n messages and served
// them back in one range scan, and returns its peak RSS. Its data
// directory, index bucket and subject prefix are named after tag.
func (b *benchRun) serveRSS(ctx context.Context, stream string, n int, bound int64, tag string) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(b.env.Dir, tag)
	cfg := b.serviceConfig(dir, tag, stream)
	b.made(kindBucket, cfg.Index.Bucket)
	doc := map[string]any{
		"data_dir": dir,
		"nats":     map[string]any{"url": cfg.NATS.URL},
		"index":    map[string]any{"bucket": cfg.Index.Bucket},
		"service":  map[string]any{"prefix": cfg.Service.Prefix, "queue_group": cfg.Service.QueueGroup},
		"block":    map[string]any{"max_linger": time.Duration(cfg.Block.MaxLinger).String()},
		"tiers": map[string]any{
			"memory":          map[string]any{"max_bytes": bound},
			"blob":            map[string]any{"url": cfg.Tiers.Blob.URL, "access_key": cfg.Tiers.Blob.AccessKey, "secret_key": cfg.Tiers.Blob.SecretKey},
			"policy_interval": time.Duration(cfg.Tiers.PolicyInterval).String(),
		},
		"streams": []map[string]any{{"name": stream}},
	}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	file := filepath.Join(dir, "nts.yaml")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		return 0, err
	}

	cmd := exec.CommandContext(ctx, exe, "serve", "--config", file, "--log-level", "warn")
	cmd.Env = append(os.Environ(), benchChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = childStopTimeout
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	rss, err := b.archiveAndScan(ctx, c, perf.Target{Prefix: cfg.Service.Prefix, Stream: stream, Size: rssSize}, n)
	if serr := c.stop(); err == nil && serr != nil {
		return 0, fmt.Errorf("nts serve: %w", serr)
	}
	return rss, err
}

// child is a running nts serve process.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited is closed
}

// archiveAndScan waits until the child replica has archived t's first n
// messages, scans them back, and returns its peak RSS then.
func (b *benchRun) archiveAndScan(ctx context.Context, c *child, t perf.Target, n int) (int64, error) {
	wctx, cancel := context.WithTimeout(ctx, readPhaseTimeout)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		// The process ending ends the wait.
		select {
		case <-c.exited:
			cancel()
		case <-wctx.Done():
		}
	})
	_, err := perf.WaitArchived(wctx, b.nc, t, uint64(n))
	if err == nil {
		_, err = perf.RangeScan(wctx, b.nc, t, "", 1, n)
	}
	select {
	case <-c.exited:
		return 0, fmt.Errorf("nts serve exited (%v) before the measurement ended: %w", c.err, err)
	default:
	}
	if err != nil {
		return 0, err
	}
	return perf.ProcessPeakRSS(c.cmd.Process.Pid)
}

// stop interrupts the process (it shuts down as on Ctrl-C) and waits for
// it, killing it after childStopTimeout. It returns how the process ended.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return c.err
	default:
	}
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.exited:
		return c.err
	case <-time.After(childStopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("did not stop within %v", childStopTimeout)
	}
}
