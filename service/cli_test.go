package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// natsCLI runs the pinned nats CLI against url with args and returns what
// it printed (stdout and stderr). It fails the test, logging that output,
// when the command fails or takes over 30s.
func natsCLI(t testing.TB, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", url, "--no-context", "--timeout", "10s"}, args...)...)
	// A home of its own: no context or settings of the machine's user.
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + home, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	t.Logf("nats %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// wantLines fails the test unless out contains every one of want.
func wantLines(t testing.TB, cmd, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("nats %s: output lacks %q:\n%s", cmd, w, out)
		}
	}
}

// lineAfter returns the trimmed line that follows the line of out that is
// exactly line once trimmed, or "" when there is none.
func lineAfter(out, line string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines[:max(len(lines)-1, 0)] {
		if strings.TrimSpace(l) == line {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}

// TestNATSCLI serves an archive of EVENTS, whose JetStream limits later
// dropped its first messages, and talks to the replica with the nats CLI.
func TestNATSCLI(t *testing.T) {
	bin := testenv.Tool(t, "nats")
	e := newAPIEnv(t)
	ctx := context.Background()
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	const events = 20
	for i := 1; i <= events; i++ {
		if _, err := e.js.Publish(ctx, fmt.Sprintf("events.%d", i%2), fmt.Appendf(nil, "event number %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.run(t, e.config(t))
	checkFor(t, 10*time.Second, func() error {
		var st service.StreamInfo
		if err := e.requestJSON("nts.stream.EVENTS", nil, &st); err != nil {
			return err
		}
		if st.LastSeq != events {
			return fmt.Errorf("EVENTS archived to %d", st.LastSeq)
		}
		return nil
	})
	// JetStream now keeps the newest 5 messages only.
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs = 5
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(ctx, 3); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("JetStream still has EVENTS seq 3: %v", err)
	}
	url := e.srv.ClientURL()

	t.Run("micro ls", func(t *testing.T) {
		var info struct {
			ID string `json:"id"`
		}
		if err := e.requestJSON("$SRV.INFO.nts", nil, &info); err != nil {
			t.Fatal(err)
		}
		out := natsCLI(t, bin, url, "micro", "ls")
		// One row: name, version, instance id, description.
		var row string
		for l := range strings.Lines(out) {
			if strings.Contains(l, info.ID) {
				row = l
			}
		}
		wantLines(t, "micro ls", row, " nts ", " "+service.Version()+" ", "nts: archived JetStream messages served from tiered storage")
	})

	t.Run("micro info", func(t *testing.T) {
		var info struct {
			ID string `json:"id"`
		}
		if err := e.requestJSON("$SRV.INFO.nts", nil, &info); err != nil {
			t.Fatal(err)
		}
		if _, err := e.request("nts.get.EVENTS.3", nil); err != nil {
			t.Fatal(err)
		}
		out := natsCLI(t, bin, url, "micro", "info", "nts")
		wantLines(t, "micro info nts", out,
			"Service: nts ("+info.ID+")", "Version: "+service.Version(), "Metadata: prefix: nts",
			"Name: msg-get", "Name: admin-promote", "Name: admin-demote-instance")
		// The replica's per-stream figures, in the admin-status endpoint's
		// statistics: archived and ingested, per tier, reads, lag, leader.
		stats := out[strings.Index(out, "admin-status Endpoint Statistics"):]
		wantLines(t, "micro info nts", stats,
			`"EVENTS": {`, `"leader": true`, `"messages": 20`, `"archive": "EVENTS"`, `"archived_blocks": `,
			`"tiers": {`, `"file": {`, `"blob": {`, `"lag": 0`, `"reads": [`, `"tier": "file"`, `"hits": 1`)
		// Each endpoint's subject, then its queue group: none on the
		// instance endpoints.
		for _, tc := range []struct{ subject, next string }{
			{"nts.get.>", "Queue Group: nts"},
			{"nts.range.>", "Queue Group: nts"},
			{"nts.admin.promote", "Queue Group: nts"},
			{"nts.admin.demote", "Queue Group: nts"},
			{"nts.admin." + info.ID + ".status", "Metadata:"},
			{"nts.admin." + info.ID + ".promote", "Metadata:"},
			{"nts.admin." + info.ID + ".demote", "Metadata:"},
		} {
			if got := lineAfter(out, "Subject: "+tc.subject); !strings.HasPrefix(got, tc.next) {
				t.Fatalf("nats micro info nts: after subject %s: %q, want %q:\n%s", tc.subject, got, tc.next, out)
			}
		}
	})

	t.Run("micro stats", func(t *testing.T) {
		out := natsCLI(t, bin, url, "micro", "stats", "nts", "--json")
		var stats []struct {
			Name      string `json:"name"`
			Endpoints []struct {
				Name        string          `json:"name"`
				Subject     string          `json:"subject"`
				NumRequests int             `json:"num_requests"`
				Data        json.RawMessage `json:"data"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal([]byte(out), &stats); err != nil {
			t.Fatalf("nats micro stats nts --json: %v\n%s", err, out)
		}
		if len(stats) != 1 || stats[0].Name != "nts" || len(stats[0].Endpoints) != 19 {
			t.Fatalf("nats micro stats nts --json: %d services:\n%s", len(stats), out)
		}
		seen := map[string]bool{}
		for _, ep := range stats[0].Endpoints {
			seen[ep.Name] = true
			var d struct {
				WorkerRequests *int64 `json:"worker_requests"`
			}
			if err := json.Unmarshal(ep.Data, &d); err != nil || d.WorkerRequests == nil {
				t.Fatalf("endpoint %s: data %s: %v", ep.Name, ep.Data, err)
			}
			if ep.Name == "stream-info" && ep.NumRequests == 0 {
				t.Fatalf("stream-info counted no requests:\n%s", out)
			}
		}
		for _, name := range []string{"msg-get", "msg-range", "admin-status", "admin-promote", "admin-demote"} {
			if !seen[name] {
				t.Fatalf("no stats of %s:\n%s", name, out)
			}
		}
	})

	t.Run("req archived", func(t *testing.T) {
		out := natsCLI(t, bin, url, "req", "nts.get.EVENTS.3", "")
		wantLines(t, "req nts.get.EVENTS.3", out,
			"event number 3", "Nts-Tier: file", "Nats-Stream: EVENTS", "Nats-Sequence: 3", "Nats-Subject: events.1")
	})

	t.Run("req not archived", func(t *testing.T) {
		out := natsCLI(t, bin, url, "req", "nts.get.EVENTS.99", "")
		wantLines(t, "req nts.get.EVENTS.99", out,
			"Nats-Service-Error-Code: 404", `stream "EVENTS" seq 99 is not archived`)
		out = natsCLI(t, bin, url, "req", "nts.get.NOPE.1", "")
		wantLines(t, "req nts.get.NOPE.1", out, "Nats-Service-Error-Code: 404", `stream "NOPE" is not archived`)
	})
}
