package client_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// fill publishes n messages to stream s, waits for nts to archive them,
// and purges JetStream down to its last keep messages.
func (e *env) fill(t testing.TB, s jetstream.Stream, n, keep int) map[uint64]*jetstream.RawStreamMsg {
	t.Helper()
	name := s.CachedInfo().Config.Name
	want := e.publish(t, name, testMsgs(name+".x", n))
	e.waitArchived(t, name, uint64(n))
	if err := s.Purge(context.Background(), jetstream.WithPurgeKeep(uint64(keep))); err != nil {
		t.Fatal(err)
	}
	return want
}

// collect reads a range to its end, checking each message against want;
// messages up to seam must come from nts, the others from JetStream,
// except those in archived.
func collect(t testing.TB, seq iter.Seq2[*jetstream.RawStreamMsg, error], want map[uint64]*jetstream.RawStreamMsg, seam uint64) []uint64 {
	t.Helper()
	var got []uint64
	for m, err := range seq {
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, m.Sequence)
		sameMsg(t, m, want[m.Sequence], m.Sequence <= seam)
	}
	return got
}

// seqs returns the sequences of want, in order, that keep selects.
func seqs(want map[uint64]*jetstream.RawStreamMsg, keep func(*jetstream.RawStreamMsg) bool) []uint64 {
	var out []uint64
	for seq, m := range want {
		if keep(m) {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return out
}

func between(lo, hi uint64) func(*jetstream.RawStreamMsg) bool {
	return func(m *jetstream.RawStreamMsg) bool { return m.Sequence >= lo && m.Sequence <= hi }
}

func TestRange(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.stream(t, jetstream.StreamConfig{Name: "R", Subjects: []string{"R.>"}})
	e.run(t, func(c *service.Config) { c.Service.Prefix = "archive.v1" }) // a prefix of two tokens
	want := e.fill(t, s, 300, 100)                                        // JetStream holds 201..300
	all := func(*jetstream.RawStreamMsg) bool { return true }

	t.Run("selections", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts client.RangeOptions
			want func(*jetstream.RawStreamMsg) bool
		}{
			{"all", client.RangeOptions{}, all},
			{"from the archive", client.RangeOptions{StartSeq: 150}, between(150, 300)},
			{"from the seam", client.RangeOptions{StartSeq: 201}, between(201, 300)},
			{"from JetStream", client.RangeOptions{StartSeq: 250}, between(250, 300)},
			{"within the archive", client.RangeOptions{StartSeq: 10, EndSeq: 120}, between(10, 120)},
			{"up to the seam", client.RangeOptions{EndSeq: 200}, between(1, 200)},
			{"across the seam", client.RangeOptions{StartSeq: 190, EndSeq: 210}, between(190, 210)},
			{"one message", client.RangeOptions{StartSeq: 200, EndSeq: 200}, between(200, 200)},
			{"after the end", client.RangeOptions{StartSeq: 301}, between(301, 301)},
			{"a subject", client.RangeOptions{Subject: "R.x.1"}, func(m *jetstream.RawStreamMsg) bool { return m.Subject == "R.x.1" }},
			{"a wildcard", client.RangeOptions{StartSeq: 100, Subject: "R.*.2"}, func(m *jetstream.RawStreamMsg) bool {
				return m.Sequence >= 100 && m.Subject == "R.x.2"
			}},
			{"from a time in the archive", client.RangeOptions{StartTime: want[150].Time}, func(m *jetstream.RawStreamMsg) bool {
				return !m.Time.Before(want[150].Time)
			}},
			{"from a time in JetStream", client.RangeOptions{StartTime: want[260].Time}, func(m *jetstream.RawStreamMsg) bool {
				return !m.Time.Before(want[260].Time)
			}},
			{"up to a time", client.RangeOptions{StartSeq: 5, EndTime: want[220].Time}, func(m *jetstream.RawStreamMsg) bool {
				return m.Sequence >= 5 && !m.Time.After(want[220].Time)
			}},
			{"between times", client.RangeOptions{StartTime: want[100].Time, EndTime: want[110].Time}, func(m *jetstream.RawStreamMsg) bool {
				return !m.Time.Before(want[100].Time) && !m.Time.After(want[110].Time)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := collect(t, e.c.Range(ctx, "R", tc.opts), want, 200)
				if w := seqs(want, tc.want); !slices.Equal(got, w) {
					t.Fatalf("got %d messages %v\nwant %d %v", len(got), got, len(w), w)
				}
			})
		}
	})

	t.Run("break", func(t *testing.T) {
		for _, start := range []uint64{1, 250} {
			var got []uint64
			for m, err := range e.c.Range(ctx, "R", client.RangeOptions{StartSeq: start}) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Sequence)
				if len(got) == 3 {
					break
				}
			}
			if !slices.Equal(got, []uint64{start, start + 1, start + 2}) {
				t.Fatalf("from %d: got %v", start, got)
			}
			for _, name := range testenv.ConsumerNames(t, ctx, s) {
				if name != "nts-R" && name != "nts-R-reader" { // nts's own
					t.Fatalf("from %d: consumer %s left", start, name)
				}
			}
		}
	})

	t.Run("invalid", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			stream string
			opts   client.RangeOptions
			want   error
		}{
			{"two starts", "R", client.RangeOptions{StartSeq: 1, StartTime: time.Now()}, client.ErrInvalidArgument},
			{"end before start", "R", client.RangeOptions{StartSeq: 10, EndSeq: 9}, client.ErrInvalidArgument},
			{"end time before start time", "R", client.RangeOptions{StartTime: time.Now(), EndTime: time.Now().Add(-time.Hour)}, client.ErrInvalidArgument},
			{"subject filter", "R", client.RangeOptions{Subject: "R.>.x"}, client.ErrInvalidArgument},
			{"stream name", "R.x", client.RangeOptions{}, jetstream.ErrInvalidStreamName},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := 0
				for m, err := range e.c.Range(ctx, tc.stream, tc.opts) {
					n++
					if m != nil || !errors.Is(err, tc.want) {
						t.Fatalf("got %v, %v; want %v", m, err, tc.want)
					}
				}
				if n != 1 {
					t.Fatalf("%d yields, want 1", n)
				}
			})
		}
	})

	t.Run("deleted in JetStream", func(t *testing.T) {
		if err := s.DeleteMsg(ctx, 250); err != nil {
			t.Fatal(err)
		}
		got := collect(t, e.c.Range(ctx, "R", client.RangeOptions{StartSeq: 240, EndSeq: 260}), want, 200)
		w := seqs(want, func(m *jetstream.RawStreamMsg) bool {
			return m.Sequence >= 240 && m.Sequence <= 260 && m.Sequence != 250
		})
		if !slices.Equal(got, w) {
			t.Fatalf("got %v, want %v", got, w)
		}
	})

	// Last: it deletes the stream.
	t.Run("stream gone", func(t *testing.T) {
		if err := e.js.DeleteStream(ctx, "R"); err != nil {
			t.Fatal(err)
		}
		got := collect(t, e.c.Range(ctx, "R", client.RangeOptions{StartSeq: 100}), want, 300)
		if w := seqs(want, between(100, 300)); !slices.Equal(got, w) {
			t.Fatalf("got %v, want %v", got, w)
		}
		for m, err := range e.c.Range(ctx, "NEVER", client.RangeOptions{}) {
			if m != nil {
				t.Fatalf("message %d of a stream never seen", m.Sequence)
			}
			wantNotFound(t, err, 404, jetstream.ErrStreamNotFound)
		}
	})
}

// TestRangeSeamRace drops more messages from JetStream while Range reads:
// the sequences JetStream dropped after Range found its first sequence come
// from nts, with no gap and no duplicate.
func TestRangeSeamRace(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		name       string
		keep       int    // JetStream's messages when Range begins
		dropAt     uint64 // the sequence at which JetStream drops more
		keepAfter  int    // JetStream's messages after that
		refilledLo uint64 // sequences read from nts because of the drop
		refilledHi uint64
	}{
		// Range found the seam at 201; JetStream drops up to 250 while Range
		// reads the archive.
		{"while reading the archive", 100, 1, 50, 201, 250},
		// Range reads JetStream from 101 a fetch at a time; JetStream drops
		// up to 280 after the first fetch.
		{"while reading JetStream", 200, 101, 20, 110, 280},
	}
	streams := make([]jetstream.Stream, len(cases))
	for i := range cases {
		name := fmt.Sprintf("RACE%d", i)
		streams[i] = e.stream(t, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	}
	e.run(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := streams[i]
			name := s.CachedInfo().Config.Name
			want := e.fill(t, s, 300, tc.keep)
			var got []uint64
			refilled := 0
			for m, err := range e.c.Range(ctx, name, client.RangeOptions{}) {
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, m.Sequence)
				fromArchive := m.Header.Get(client.HeaderTier) != ""
				sameMsg(t, m, want[m.Sequence], fromArchive)
				if m.Sequence >= tc.refilledLo && m.Sequence <= tc.refilledHi && fromArchive {
					refilled++
				}
				if m.Sequence == tc.dropAt {
					if err := s.Purge(ctx, jetstream.WithPurgeKeep(uint64(tc.keepAfter))); err != nil {
						t.Fatal(err)
					}
				}
			}
			if w := seqs(want, between(1, 300)); !slices.Equal(got, w) {
				t.Fatalf("got %d messages %v", len(got), got)
			}
			if refilled == 0 {
				t.Fatalf("no message of %d..%d came from nts", tc.refilledLo, tc.refilledHi)
			}
		})
	}
}

// TestRangePullLimit reads a range across the seam from a server that
// limits pull requests to 10 messages (jetstream limits max_request_batch):
// JetStream's part is fetched within the limit, and nts archives the
// stream under it.
func TestRangePullLimit(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.JetStreamLimits.MaxRequestBatch = 10 })
	s := e.stream(t, jetstream.StreamConfig{Name: "LIM", Subjects: []string{"LIM.>"}})
	e.run(t)
	want := e.fill(t, s, 300, 100) // JetStream holds 201..300
	got := collect(t, e.c.Range(context.Background(), "LIM", client.RangeOptions{}), want, 200)
	if all := seqs(want, func(*jetstream.RawStreamMsg) bool { return true }); !slices.Equal(got, all) {
		t.Fatalf("read %d messages %v..., want %d", len(got), got[:min(len(got), 5)], len(all))
	}
}
