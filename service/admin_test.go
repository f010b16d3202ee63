package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/service"
	"github.com/nats-tiered/nts/tier"
)

// move sends an admin.promote or admin.demote request and decodes its
// reply, or returns the micro error as "<code>: <description>".
func (e *apiEnv) move(t testing.TB, subject, body string) (service.MoveReply, error) {
	t.Helper()
	var r service.MoveReply
	err := e.requestJSON(subject, []byte(body), &r)
	return r, err
}

// waitTiers waits until the replica's block.info of ORDERS's block at first
// lists want.
func (e *apiEnv) waitTiers(t testing.TB, first uint64, want ...string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		var bm index.BlockMeta
		if err := e.requestJSON(fmt.Sprintf("nts.block.ORDERS.%d", first), nil, &bm); err != nil {
			return err
		}
		if !slices.Equal(bm.Tiers, want) {
			return fmt.Errorf("block %d in tiers %v, want %v", first, bm.Tiers, want)
		}
		return nil
	})
}

// blocks returns ORDERS's blocks as the replica lists them.
func (e *apiEnv) blocks(t testing.TB) []index.BlockMeta {
	t.Helper()
	var page service.BlocksReply
	if err := e.requestJSON("nts.blocks.ORDERS", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Blocks) < 4 {
		t.Fatalf("%d blocks, want 4 or more", len(page.Blocks))
	}
	return page.Blocks
}

// held reports whether the file tier under dir holds key.
func held(t testing.TB, dir, key string) bool {
	t.Helper()
	f, err := tier.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, tier.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestAdminMove(t *testing.T) {
	e := newAPIEnv(t)
	cfg := e.config(t)
	on := true
	cfg.Tiers.Memory.Enabled = &on
	e.run(t, cfg)
	blocks := e.blocks(t)

	t.Run("demote to the last copy, then promote back", func(t *testing.T) {
		b := blocks[1]
		e.waitTiers(t, b.FirstSeq, "memory", "file", "blob")
		one := fmt.Sprintf(`{"stream": "ORDERS", "first_seq": %d}`, b.FirstSeq)
		for _, step := range []struct {
			subject, tier string
			tiers         []string
			inFile        bool
		}{
			{"nts.admin.demote", "memory", []string{"file", "blob"}, true},
			{"nts.admin.demote", "file", []string{"blob"}, false},
			{"nts.admin.promote", "file", []string{"file", "blob"}, true},
			{"nts.admin.promote", "memory", []string{"memory", "file", "blob"}, true},
			{"nts.admin.promote", "memory", []string{"memory", "file", "blob"}, true}, // already in the hottest
		} {
			r, err := e.move(t, step.subject, one)
			if err != nil {
				t.Fatalf("%s: %v", step.subject, err)
			}
			want := service.MovedBlock{FirstSeq: b.FirstSeq, Key: b.Key, Tier: step.tier}
			if len(r.Blocks) != 1 || r.Blocks[0] != want || len(r.Errors) != 0 {
				t.Fatalf("%s: reply %+v, want block %+v", step.subject, r, want)
			}
			e.waitTiers(t, b.FirstSeq, step.tiers...)
			if got := held(t, cfg.Tiers.File.Dir, b.Key); got != step.inFile {
				t.Fatalf("%s to %v: file tier holds the block: %v", step.subject, step.tiers, got)
			}
			if step.tier == "memory" && step.subject == "nts.admin.promote" {
				m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", b.FirstSeq), nil)
				if err != nil {
					t.Fatal(err)
				}
				if tr := m.Header.Get("Nts-Tier"); tr != "memory" || !bytes.Equal(m.Data, e.sent[b.FirstSeq].Data) {
					t.Fatalf("promoted block: seq %d served by %q, %d bytes", b.FirstSeq, tr, len(m.Data))
				}
			}
		}
	})

	t.Run("demoting the last copy", func(t *testing.T) {
		b := blocks[2]
		one := fmt.Sprintf(`{"stream": "ORDERS", "first_seq": %d}`, b.FirstSeq)
		for _, from := range []string{"memory", "file"} {
			r, err := e.move(t, "nts.admin.demote", one)
			if err != nil || len(r.Blocks) != 1 || r.Blocks[0].Tier != from {
				t.Fatalf("demote: %+v, %v; want it out of %s", r, err, from)
			}
		}
		m, err := e.request("nts.admin.demote", []byte(one))
		wantError(t, m, err, "409")
		if desc := m.Header.Get("Nats-Service-Error"); !strings.Contains(desc, "only copy") || !strings.Contains(desc, "blob") {
			t.Fatalf("409 description %q", desc)
		}
		e.waitTiers(t, b.FirstSeq, "blob")
		m, err = e.request(fmt.Sprintf("nts.get.ORDERS.%d", b.LastSeq), nil)
		if err != nil {
			t.Fatal(err)
		}
		e.checkMsg(t, m, b.LastSeq)
		if tr := m.Header.Get("Nts-Tier"); tr != "blob" {
			t.Fatalf("demoted block served by %q", tr)
		}
	})

	t.Run("range", func(t *testing.T) {
		// Blocks 3.. overlap [first of 3 + 1, first of 5]: 3, 4 and 5.
		lo, hi := blocks[3].FirstSeq+1, blocks[len(blocks)-1].FirstSeq
		var want []uint64
		for _, b := range blocks[3:] {
			want = append(want, b.FirstSeq)
		}
		body := fmt.Sprintf(`{"stream": "ORDERS", "start_seq": %d, "end_seq": %d}`, lo, hi)
		for _, step := range []struct{ subject, tier string }{
			{"nts.admin.demote", "memory"},
			{"nts.admin.promote", "memory"},
		} {
			r, err := e.move(t, step.subject, body)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, b := range r.Blocks {
				if b.Tier != step.tier {
					t.Fatalf("%s: block %+v", step.subject, b)
				}
				got = append(got, b.FirstSeq)
			}
			if !slices.Equal(got, want) || len(r.Errors) != 0 {
				t.Fatalf("%s: moved %v, errors %+v; want %v", step.subject, got, r.Errors, want)
			}
		}
		for _, first := range want {
			e.waitTiers(t, first, "memory", "file", "blob")
		}
		// A range whose first block is at its last copy: it is listed in
		// errors and the others move.
		body = fmt.Sprintf(`{"stream": "ORDERS", "start_seq": %d, "end_seq": %d}`, blocks[2].FirstSeq, blocks[3].FirstSeq)
		r, err := e.move(t, "nts.admin.demote", body)
		if err != nil || len(r.Blocks) != 1 || r.Blocks[0].FirstSeq != blocks[3].FirstSeq ||
			len(r.Errors) != 1 || r.Errors[0].FirstSeq != blocks[2].FirstSeq || r.Errors[0].Code != "409" || r.Errors[0].Key != blocks[2].Key {
			t.Fatalf("demote over a last copy: %+v, %v", r, err)
		}
		// Every block of the range at its last copy: the request fails.
		body = fmt.Sprintf(`{"stream": "ORDERS", "start_seq": %d, "end_seq": %d}`, blocks[2].FirstSeq, blocks[2].LastSeq)
		m, err := e.request("nts.admin.demote", []byte(body))
		wantError(t, m, err, "409")
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct{ body, code string }{
			{"", "400"},
			{"{", "400"},
			{`{"first_seq": 1}`, "400"},
			{`{"stream": "ORDERS"}`, "400"},
			{`{"stream": "ORDERS", "first_seq": 1, "unknown": 1}`, "400"},
			{`{"stream": "ORDERS", "first_seq": 1, "start_seq": 1, "end_seq": 5}`, "400"},
			{`{"stream": "ORDERS", "start_seq": 5}`, "400"},
			{`{"stream": "ORDERS", "end_seq": 5}`, "400"},
			{`{"stream": "ORDERS", "start_seq": 9, "end_seq": 5}`, "400"},
			{`{"stream": "ORDERS", "first_seq": -1}`, "400"},
			{`{"stream": "OR.DERS", "first_seq": 1}`, "400"},
			{`{"stream": "ORDERS", "first_seq": 1} {}`, "400"},
			{`{"stream": "NOPE", "first_seq": 1}`, "404"},
			{`{"stream": "ORDERS", "first_seq": 2}`, "404"},
			{`{"stream": "ORDERS", "start_seq": 99999, "end_seq": 100000}`, "404"},
		} {
			for _, verb := range []string{"promote", "demote"} {
				t.Run(verb+" "+tc.body, func(t *testing.T) {
					m, err := e.request("nts.admin."+verb, []byte(tc.body))
					wantError(t, m, err, tc.code)
				})
			}
		}
		// Nothing moved: block 0 is where ingest put it.
		e.waitTiers(t, blocks[0].FirstSeq, "memory", "file", "blob")
	})
}

// TestAdminInstance checks that the instance subjects reach the replica
// they name: a replica that does not lead ORDERS holds its blocks only in
// the blob tier it shares with the leader.
func TestAdminInstance(t *testing.T) {
	e := newAPIEnv(t)
	shared := "dir://" + filepath.ToSlash(t.TempDir())
	var cfgs []service.Config
	for _, id := range []string{"leader", "follower"} {
		cfg := e.config(t)
		cfg.Tiers.Blob.URL = shared
		cfg.Service.InstanceID = id
		e.run(t, cfg)
		cfgs = append(cfgs, cfg)
		// run returns once either replica answers; wait for this one.
		checkFor(t, 10*time.Second, func() error {
			var st service.Status
			return e.requestJSON("nts.admin."+id+".status", nil, &st)
		})
	}
	leader, follower := cfgs[0], cfgs[1]
	var info service.StreamInfo
	if err := e.requestJSON("nts.stream.ORDERS", nil, &info); err != nil || info.Leader != "leader" {
		t.Fatalf("ORDERS led by %q, %v", info.Leader, err)
	}
	b := e.blocks(t)[1]
	one := fmt.Sprintf(`{"stream": "ORDERS", "first_seq": %d}`, b.FirstSeq)

	// The follower holds the block in blob alone: demoting it there would
	// delete the last copy, whatever the leader holds.
	for range 3 {
		m, err := e.request("nts.admin.follower.demote", []byte(one))
		wantError(t, m, err, "409")
	}
	r, err := e.move(t, "nts.admin.follower.promote", one)
	if err != nil || len(r.Blocks) != 1 || r.Blocks[0].Tier != "file" {
		t.Fatalf("promote on the follower: %+v, %v", r, err)
	}
	if !held(t, follower.Tiers.File.Dir, b.Key) || !held(t, leader.Tiers.File.Dir, b.Key) {
		t.Fatal("the follower's promote did not copy the block into its file tier")
	}
	// The follower does not lead ORDERS: the index still lists the
	// leader's tiers.
	e.waitTiers(t, b.FirstSeq, "file", "blob")

	r, err = e.move(t, "nts.admin.leader.demote", one)
	if err != nil || len(r.Blocks) != 1 || r.Blocks[0].Tier != "file" {
		t.Fatalf("demote on the leader: %+v, %v", r, err)
	}
	if held(t, leader.Tiers.File.Dir, b.Key) || !held(t, follower.Tiers.File.Dir, b.Key) {
		t.Fatal("the leader's demote did not remove the block from its own file tier alone")
	}
	e.waitTiers(t, b.FirstSeq, "blob")
}
