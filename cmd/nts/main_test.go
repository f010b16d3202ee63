package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-tiered/nts/service"
)

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("tiers:\n  memory:\n    max_byte: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"no command", nil, flag.ErrHelp.Error(), ""},
		{"version", []string{"version"}, "", "nts " + service.Version()},
		{"help", []string{"help"}, "", "nts serve"},
		{"unknown command", []string{"archive"}, `unknown command "archive"`, ""},
		{"unknown flag", []string{"serve", "--colour"}, "flag provided but not defined", ""},
		{"stray argument", []string{"serve", "now"}, `unexpected argument "now"`, ""},
		{"bad log level", []string{"serve", "--log-level", "loud"}, "--log-level", ""},
		{"missing config", []string{"serve", "--config", filepath.Join(dir, "none.yaml")}, "config", ""},
		{"config field path", []string{"serve", "--config", badConfig}, "tiers.memory.max_byte (line 3): unknown field", ""},
		{"bad listen", []string{"serve", "--listen", "nowhere", "--data-dir", dir}, "nats.embedded.listen", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("run(%q): %v", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("run(%q) = %v, want an error with %q", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Fatalf("run(%q) printed %q, want %q", tc.args, stdout.String(), tc.wantOut)
			}
		})
	}
	if err := run(context.Background(), []string{"serve", "--config", badConfig}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, service.ErrConfig) {
		t.Fatalf("config error %v does not wrap service.ErrConfig", err)
	}
}

// TestMemoryLimit checks the soft memory limit nts serve sets: the memory
// tier's bound plus headroom with an external NATS server, none with the
// embedded one, with the memory tier off, or with GOMEMLIMIT set.
func TestMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	off := false
	for _, tc := range []struct {
		name  string
		cfg   func(*service.Config)
		limit int64
	}{
		{"external", func(c *service.Config) { c.NATS.URL = "nats://127.0.0.1:4222" }, 256<<20 + memoryHeadroom},
		{"external 64MiB", func(c *service.Config) {
			c.NATS.URL = "nats://127.0.0.1:4222"
			c.Tiers.Memory.MaxBytes = 64 << 20
		}, 64<<20 + memoryHeadroom},
		{"embedded", func(c *service.Config) {}, 0},
		{"memory tier off", func(c *service.Config) {
			c.NATS.URL = "nats://127.0.0.1:4222"
			c.Tiers.Memory.Enabled = &off
		}, 0},
	} {
		var cfg service.Config
		tc.cfg(&cfg)
		cfg.Complete()
		limit, ok := memoryLimit(cfg)
		if ok != (tc.limit > 0) || limit != tc.limit {
			t.Errorf("%s: limit %d, %v; want %d", tc.name, limit, ok, tc.limit)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	cfg := service.Config{}
	cfg.NATS.URL = "nats://127.0.0.1:4222"
	cfg.Complete()
	if _, ok := memoryLimit(cfg); ok {
		t.Error("a limit set over GOMEMLIMIT")
	}
}
