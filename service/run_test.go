package service_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-tiered/nts/service"
)

// runReplica runs a replica of cfg (completed) until the test ends, logging
// to log (nil: nowhere), and fails the test if it ends with an error or
// does not stop within 30 s.
func runReplica(tb testing.TB, cfg service.Config, log *slog.Logger) {
	tb.Helper()
	startReplica(tb, cfg, log)
}

// startReplica runs a replica as runReplica does and returns a function
// that stops it sooner and waits for it; the test's end stops it otherwise.
func startReplica(tb testing.TB, cfg service.Config, log *slog.Logger) (stop func()) {
	tb.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, cfg, log) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("service.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Error("replica did not stop")
		}
	})
	tb.Cleanup(stop)
	return stop
}

// warnLog logs warnings and errors to stderr: what a benchmark's replica
// has to say.
func warnLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
