package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

func TestGetMsg(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.stream(t, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	e.run(t)
	first := nats.NewMsg("orders.first")
	first.Data = []byte("the only one on its subject")
	msgs := append([]*nats.Msg{first}, testMsgs("orders.n", 39)...)
	want := e.publish(t, "ORDERS", msgs)
	e.waitArchived(t, "ORDERS", 40)
	if err := s.Purge(ctx, jetstream.WithPurgeKeep(10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 35); err != nil { // archived, then deleted
		t.Fatal(err)
	}

	t.Run("fallback", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			seq         uint64
			fromArchive bool
		}{
			{"first", 1, true},
			{"with headers", 2, true},
			{"empty payload", 3, true},
			{"every byte", 4, true},
			{"last before the seam", 30, true},
			{"first in JetStream", 31, false},
			{"deleted from JetStream", 35, true},
			{"last", 40, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := e.c.GetMsg(ctx, "ORDERS", tc.seq)
				if err != nil {
					t.Fatal(err)
				}
				sameMsg(t, got, want[tc.seq], tc.fromArchive)
			})
		}
	})

	t.Run("last for subject", func(t *testing.T) {
		for _, tc := range []struct {
			subject     string
			seq         uint64
			fromArchive bool
		}{
			{"orders.first", 1, true},
			{"orders.n.1", 39, false},
			{"orders.>", 40, false},
		} {
			got, err := e.c.GetLastMsgForSubject(ctx, "ORDERS", tc.subject)
			if err != nil {
				t.Fatalf("%s: %v", tc.subject, err)
			}
			sameMsg(t, got, want[tc.seq], tc.fromArchive)
		}
		_, err := e.c.GetLastMsgForSubject(ctx, "ORDERS", "nowhere")
		wantNotFound(t, err, 404, jetstream.ErrMsgNotFound)
	})

	t.Run("errors", func(t *testing.T) {
		_, err := e.c.GetMsg(ctx, "ORDERS", 41)
		wantNotFound(t, err, 404, jetstream.ErrMsgNotFound)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("%v: stream not found, yet JetStream has it", err)
		}
		for _, tc := range []struct {
			name   string
			c      *client.Client
			stream string
			seq    uint64
			want   error
		}{
			{"stream name with a dot", e.c, "OR.DERS", 1, jetstream.ErrInvalidStreamName},
			{"stream name with a wildcard", e.c, "*", 1, jetstream.ErrInvalidStreamName},
			{"empty stream name", e.c, "", 1, jetstream.ErrInvalidStreamName},
			{"sequence 0", e.c, "ORDERS", 0, client.ErrInvalidArgument},
			{"empty prefix", client.New(e.nc, client.WithPrefix("")), "ORDERS", 1, client.ErrInvalidArgument},
			{"prefix with a wildcard", client.New(e.nc, client.WithPrefix("nts.*")), "ORDERS", 1, client.ErrInvalidArgument},
			{"no connection", client.New(nil), "ORDERS", 1, client.ErrInvalidArgument},
			{"no nts on the prefix", client.New(e.nc, client.WithPrefix("elsewhere")), "ORDERS", 1, nats.ErrNoResponders},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m, err := tc.c.GetMsg(ctx, tc.stream, tc.seq)
				if !errors.Is(err, tc.want) || m != nil {
					t.Fatalf("got %v, %v; want %v", m, err, tc.want)
				}
			})
		}
	})

	// Last: it deletes the stream.
	t.Run("stream gone", func(t *testing.T) {
		if err := e.js.DeleteStream(ctx, "ORDERS"); err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{1, 31, 40} {
			got, err := e.c.GetMsg(ctx, "ORDERS", seq)
			if err != nil {
				t.Fatal(err)
			}
			sameMsg(t, got, want[seq], true)
		}
		_, err := e.c.GetMsg(ctx, "ORDERS", 41)
		wantNotFound(t, err, 404, jetstream.ErrMsgNotFound, jetstream.ErrStreamNotFound)
		_, err = e.c.GetMsg(ctx, "NEVER", 1)
		wantNotFound(t, err, 404, jetstream.ErrMsgNotFound, jetstream.ErrStreamNotFound)
	})

	// The archive of the plain name is the first stream's: its messages
	// are not those of a stream created again under the name.
	t.Run("stream created again", func(t *testing.T) {
		s := e.stream(t, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
		again := e.publish(t, "ORDERS", testMsgs("orders.again", 3))
		if err := s.Purge(ctx, jetstream.WithPurgeKeep(1)); err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{1, 2} {
			if m, err := e.c.GetMsg(ctx, "ORDERS", seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Fatalf("seq %d: got %v, %v; want not found", seq, m, err)
			}
		}
		got, err := e.c.GetMsg(ctx, "ORDERS", 3)
		if err != nil {
			t.Fatal(err)
		}
		sameMsg(t, got, again[3], false)
		var seqs []uint64
		for m, err := range e.c.Range(ctx, "ORDERS", client.RangeOptions{}) {
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, m.Sequence)
			sameMsg(t, m, again[m.Sequence], false)
		}
		if len(seqs) != 1 || seqs[0] != 3 {
			t.Fatalf("range of the new stream: %v", seqs)
		}
	})
}

// wantNotFound checks that err is nts's *client.Error with code and that
// it stands for each of sentinels.
func wantNotFound(t testing.TB, err error, code int, sentinels ...error) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != code || ce.Description == "" || ce.Subject == "" {
		t.Fatalf("error %v (%T), want nts's %d", err, err, code)
	}
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			t.Fatalf("error %v is not %v", err, s)
		}
	}
}
