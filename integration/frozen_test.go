package integration

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
)

// TestFrozenLeaderIsFenced freezes the leading nts process (SIGSTOP) while
// messages flow: its lock expires and a second replica takes over within
// twice the lock TTL and archives on. Woken (SIGCONT), the old leader
// commits nothing, steps down and leaves the archive exactly-once.
func TestFrozenLeaderIsFenced(t *testing.T) {
	const ttl = 3 * time.Second
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Index.LockTTL = service.Duration(ttl)
	cfg.Block.TargetSize = 64 << 10
	proc := startProcess(t, writeConfig(t, cfg))
	rd := e.reader(t, cfg)
	want := map[uint64]published{}
	publish(t, e.js, "orders", 0, 2000, want, nil)
	rd.waitArchived(t, "ORDERS", 2000, 30*time.Second)
	old, ok, err := rd.ix.Leader(ctx, "ORDERS")
	if err != nil || !ok {
		t.Fatalf("no leader while only the process runs (%v)", err)
	}
	heads := watchHead(t, e.js, cfg.Index.Bucket, "ORDERS")

	cfg2 := e.config(t)
	cfg2.Index.LockTTL = service.Duration(ttl)
	r2 := startReplica(t, cfg2)
	// Freeze the leader in the middle of a burst.
	var frozen time.Time
	publish(t, e.js, "orders", 2000, 2000, want, func(last uint64) {
		if last == 3000 {
			if err := proc.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			frozen = time.Now()
		}
	})

	// The second replica takes the lock once it expires.
	deadline := frozen.Add(2 * ttl)
	for {
		id, ok, err := rd.ix.Leader(ctx, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		if ok && id == r2.id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock held by %q (ok %v) %v after the leader froze; want %q within 2×TTL", id, ok, time.Since(frozen), r2.id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tookOver := time.Since(frozen)
	rd.waitArchived(t, "ORDERS", 4000, 30*time.Second)
	archived := time.Since(frozen)

	// Wake the old leader while messages keep coming.
	if err := proc.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()
	publish(t, e.js, "orders", 4000, 2000, want, nil)
	rd.waitArchived(t, "ORDERS", 6000, 30*time.Second)
	// It notices that it lost the lock (or that its commit was fenced) and
	// stops leading.
	logPath := proc.Stdout.(*os.File).Name()
	deadline = time.Now().Add(2 * ttl)
	for {
		log, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if line, ok := lineWith(string(log), "leading ended with an error"); ok {
			t.Logf("the old leader stepped down %v after it woke: %s", time.Since(woke).Round(time.Millisecond), line)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old leader did not step down within %v of waking", 2*ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stopped cleanly, it seals nothing: it no longer leads.
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("the old leader exited with %v after SIGTERM", err)
	}
	waitAcked(t, e.js, "ORDERS", "nts-ORDERS", 6000, 30*time.Second)
	checkArchive(t, rd, "ORDERS", want)

	// Every commit after the takeover is the new leader's; the old one
	// never committed again.
	if id, _, _ := rd.ix.Leader(ctx, "ORDERS"); id != r2.id {
		t.Fatalf("lock held by %q at the end; want %q", id, r2.id)
	}
	hs := heads.stop(t, 6000)
	took := -1
	for i, h := range hs {
		switch {
		case h.Leader == r2.id && took < 0:
			took = i
		case h.Leader != old && took < 0:
			t.Fatalf("head %d committed by %q before the takeover; want %q", h.LastSeq, h.Leader, old)
		case h.Leader != r2.id && took >= 0:
			t.Fatalf("head %d committed by %q after %q took over", h.LastSeq, h.Leader, r2.id)
		}
	}
	if took < 0 {
		t.Fatalf("no head committed by %q among %d", r2.id, len(hs))
	}
	t.Logf("lock TTL %v: lock taken over %v after the freeze, archive caught up %v after it; %d heads by the old leader, %d by the new",
		ttl, tookOver.Round(time.Millisecond), archived.Round(time.Millisecond), took, len(hs)-took)
}

// headWatch records every value the head of a stream takes.
type headWatch struct {
	w    jetstream.KeyWatcher
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []index.Head
	err  error
}

// watchHead records the head of stream in the index bucket from now on,
// starting with its current value.
func watchHead(t *testing.T, js jetstream.JetStream, bucket, stream string) *headWatch {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, "head."+index.StreamToken(stream))
	if err != nil {
		t.Fatal(err)
	}
	hw := &headWatch{w: w}
	hw.wg.Go(func() {
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // the end of the initial values, or a delete
			}
			var h index.Head
			err := json.Unmarshal(e.Value(), &h)
			hw.mu.Lock()
			hw.seen = append(hw.seen, h)
			if err != nil && hw.err == nil {
				hw.err = err
			}
			hw.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		w.Stop()
		hw.wg.Wait()
	})
	return hw
}

// stop waits until the watch saw a head at or past seq, stops it and
// returns every head seen, in order.
func (hw *headWatch) stop(t *testing.T, seq uint64) []index.Head {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hw.mu.Lock()
		n := len(hw.seen)
		done := n > 0 && hw.seen[n-1].LastSeq >= seq
		hw.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the head watch saw no head at or past seq %d within 10s (%d heads)", seq, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hw.w.Stop()
	hw.wg.Wait()
	if hw.err != nil {
		t.Fatalf("head: %v", hw.err)
	}
	return hw.seen
}

// lineWith returns the first line of s containing sub.
func lineWith(s, sub string) (string, bool) {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}
