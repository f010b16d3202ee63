package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestServeZeroConfig runs `nts serve` as a user would on a fresh machine
// (embedded server, default tiers under --data-dir), creates a stream the
// way the nats CLI would, and finds its messages archived in the dir://
// blob tier; SIGTERM then stops it cleanly.
func TestServeZeroConfig(t *testing.T) {
	bin, err := ntsBinary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "nts.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("nts log:\n%s", out)
		}
	}()
	var nc *nats.Conn
	deadline := time.Now().Add(30 * time.Second)
	for nc == nil {
		nc, err = nats.Connect("nats://" + addr)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("nts serve did not listen on %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CLI", Subjects: []string{"cli.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := js.Publish(ctx, fmt.Sprintf("cli.%d", i), []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// With no streams configured, the new stream is archived; the default
	// max_linger seals its partial block within seconds.
	blobDir := filepath.Join(dir, "data", "blob", "CLI")
	deadline = time.Now().Add(60 * time.Second)
	for {
		entries, _ := os.ReadDir(blobDir)
		if len(entries) > 0 && strings.HasSuffix(entries[len(entries)-1].Name(), "-00000000000000000100.blk") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no block ending at seq 100 in %s: %v", blobDir, entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
	nc.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("nts serve exited with %v after SIGTERM", err)
	}
	out, _ := os.ReadFile(logPath)
	for _, want := range []string{"embedded NATS server listening", "nts ready", "stopped"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("log lacks %q:\n%s", want, out)
		}
	}
}
