package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/service"
)

// writeConfig writes cfg's essentials as the YAML file nts serve reads.
func writeConfig(t *testing.T, cfg service.Config) string {
	t.Helper()
	y := fmt.Sprintf(`data_dir: %s
nats: {url: %q}
index: {lock_ttl: %s}
block: {target_size: %s, frame_size: %s, max_linger: %s}
tiers:
  blob: {url: %q, access_key: %q, secret_key: %q}
`, cfg.DataDir, cfg.NATS.URL, cfg.Index.LockTTL, cfg.Block.TargetSize, cfg.Block.FrameSize, cfg.Block.MaxLinger,
		cfg.Tiers.Blob.URL, cfg.Tiers.Blob.AccessKey, cfg.Tiers.Blob.SecretKey)
	file := filepath.Join(t.TempDir(), "nts.yaml")
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startProcess runs the nts binary with the config file; its log goes to
// a file shown when the test fails.
func startProcess(t *testing.T, file string) *exec.Cmd {
	t.Helper()
	bin, err := ntsBinary()
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.CreateTemp(t.TempDir(), "nts-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", file, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("nts log (%s):\n%s", logFile.Name(), out)
		}
		logFile.Close()
	})
	return cmd
}

// TestKillAtRandomPoints kills nts with SIGKILL (no flush, no ack) at 10
// random points while messages flow, restarts it each time, and checks that
// the archive ends with every message exactly once.
func TestKillAtRandomPoints(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Index.LockTTL = service.Duration(time.Second)
	cfg.Block.TargetSize = 64 << 10
	file := writeConfig(t, cfg)
	want := map[uint64]published{}
	rng := rand.New(rand.NewPCG(1, 2))
	proc := startProcess(t, file)
	for i := range 10 {
		publish(t, e.js, "orders", i*3000, 3000, want, nil)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		proc.Wait()
		proc = startProcess(t, file)
	}
	publish(t, e.js, "orders", 30000, 1000, want, nil)
	r := e.reader(t, cfg)
	r.waitArchived(t, "ORDERS", uint64(len(want)), 2*time.Minute)
	checkArchive(t, r, "ORDERS", want)
	// The last run stops cleanly: SIGTERM seals, commits and acks, once.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("nts exited with %v after SIGTERM", err)
	}
	c, err := e.js.Consumer(ctx, "ORDERS", "nts-ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != uint64(len(want)) || info.NumAckPending != 0 {
		t.Fatalf("consumer after shutdown: ack floor %d, %d pending; want %d, 0", info.AckFloor.Stream, info.NumAckPending, len(want))
	}
}
