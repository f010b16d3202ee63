// Package integration holds end-to-end tests: an embedded nats-server, a real
// S3 server (versitygw, built from the pinned tools module), and nts replicas
// run in-process or as the built binary.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/nats-tiered/nts/block"
	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/internal/tools"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier"
)

// env is one test's NATS server and S3 server.
type env struct {
	srv *server.Server
	s3  testenv.S3Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, testenv.RunVersity(t))
}

// newEnvOn is newEnv with the S3 server given.
func newEnvOn(t *testing.T, s3 testenv.S3Server) *env {
	t.Helper()
	srv := testenv.RunNATS(t)
	testenv.CreateBucket(t, s3, "archive")
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, s3: s3, nc: nc, js: js}
}

// config returns a replica's configuration: its own data dir (memory and
// file tiers are local to a replica), the shared S3 bucket, small blocks.
func (e *env) config(t *testing.T) service.Config {
	t.Helper()
	c := service.Config{DataDir: t.TempDir()}
	c.NATS.URL = e.srv.ClientURL()
	c.Index.LockTTL = service.Duration(5 * time.Second)
	c.Block.TargetSize = 256 << 10
	c.Block.FrameSize = 32 << 10
	c.Block.MaxLinger = service.Duration(500 * time.Millisecond)
	c.Tiers.Blob.URL = e.s3.URL("archive", "nts")
	c.Tiers.Blob.AccessKey, c.Tiers.Blob.SecretKey = e.s3.AccessKey, e.s3.SecretKey
	c.Service.InstanceID = nuid.Next()
	c.Complete()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// replica is an nts replica run in-process.
type replica struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	id     string
}

func startReplica(t *testing.T, cfg service.Config) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, done: make(chan error, 1), id: cfg.Service.InstanceID}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { r.done <- service.Run(ctx, cfg, log) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the replica and waits for Run to return; it is idempotent.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("replica: %v", err)
			}
		case <-time.After(60 * time.Second):
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Errorf("replica did not stop within 60s; goroutines:\n%s", buf.String())
		}
	})
}

// testWriter sends log lines to t.Log while the test runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// reader opens the index and the tiers of cfg, as another replica would.
type reader struct {
	ix   *index.Index
	ctrl *tier.Controller
}

func (e *env) reader(t *testing.T, cfg service.Config) *reader {
	t.Helper()
	ctx := context.Background()
	ix, err := index.Open(ctx, e.js, index.Options{Bucket: cfg.Index.Bucket, LockTTL: time.Duration(cfg.Index.LockTTL)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	ctrl, err := service.OpenTiers(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &reader{ix: ix, ctrl: ctrl}
}

// waitArchived waits until the view holds a block ending at or after seq.
func (r *reader) waitArchived(t *testing.T, stream string, seq uint64, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := r.ix.WaitFor(ctx, stream, seq); err != nil {
		s, _ := r.ix.Stream(stream)
		t.Fatalf("seq %d of %s not archived within %v: %v (archived: %+v)", seq, stream, d, err, s)
	}
}

// all reads every archived message of stream, in block order, and checks
// that blocks neither overlap nor repeat a sequence.
func (r *reader) all(t *testing.T, stream string) []block.Msg {
	t.Helper()
	blocks := r.ix.Blocks(stream, 0, 0)
	var out []block.Msg
	keys := map[string]bool{}
	var last uint64
	for _, b := range blocks {
		if b.FirstSeq <= last {
			t.Fatalf("block %d-%d overlaps the one before (ending %d)", b.FirstSeq, b.LastSeq, last)
		}
		if keys[b.Key] {
			t.Fatalf("block key %s used twice", b.Key)
		}
		keys[b.Key] = true
		last = b.LastSeq
		n := 0
		err := r.ctrl.ReadRange(context.Background(), b.Key, b.Size, b.FirstSeq, b.LastSeq, func(m block.Msg, _ string) error {
			out = append(out, m)
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("read block %s: %v", b.Key, err)
		}
		if uint64(n) != b.Count {
			t.Fatalf("block %s holds %d messages, its index entry says %d", b.Key, n, b.Count)
		}
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i].Seq < out[j].Seq }) {
		t.Fatal("archived messages are not in sequence order")
	}
	return out
}

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ntsBinary builds cmd/nts once per test process.
var ntsBinary = sync.OnceValues(func() (string, error) {
	root, err := tools.RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "nts-bin-")
	binDir = dir
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nts")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/nts")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/nts: %v\n%s", err, out)
	}
	return bin, nil
})
