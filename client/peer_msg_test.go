package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
)

func TestPeerGetMsg(t *testing.T) {
	e := newPeerEnv(t)
	for _, tc := range []struct {
		name  string
		reply *nats.Msg // nil: no reply
		want  error     // nil: the message
	}{
		{"valid", msgReply("S", 7, "s.x", "data", "Trace", "t1"), nil},
		{"no stream header", msgReply("S", 7, "s.x", "data", client.HeaderStream, ""), client.ErrInvalidReply},
		{"no subject header", msgReply("S", 7, "s.x", "data", client.HeaderSubject, ""), client.ErrInvalidReply},
		{"sequence not a number", msgReply("S", 7, "s.x", "data", client.HeaderSequence, "7x"), client.ErrInvalidReply},
		{"another sequence", msgReply("S", 8, "s.x", "data"), client.ErrInvalidReply},
		{"bad time stamp", msgReply("S", 7, "s.x", "data", client.HeaderTimeStamp, "yesterday"), client.ErrInvalidReply},
		{"error code not a number", errReply("bad", "what"), client.ErrInvalidReply},
		{"not found", errReply("404", "stream \"S\" seq 7 is not archived"), jetstream.ErrMsgNotFound},
		{"unavailable", errReply("503", "no tier could serve the block"), &client.Error{}},
		{"no reply", nil, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.peer(t, client.GetSubject(client.DefaultPrefix, "S", 7), func(int, *nats.Msg) []*nats.Msg {
				if tc.reply == nil {
					return nil
				}
				return msgs(tc.reply)
			})
			m, err := e.c.GetMsg(ctxFor(t, 500*time.Millisecond), "S", 7)
			switch want := tc.want.(type) {
			case nil:
				if err != nil {
					t.Fatal(err)
				}
				if m.Sequence != 7 || m.Subject != "s.x" || string(m.Data) != "data" || m.Time.UnixNano() != 1700000000_000000007 ||
					m.Header.Get("Trace") != "t1" || m.Header.Get(client.HeaderTier) != "file" || m.Header.Get(client.HeaderStream) != "" ||
					m.Header.Get(client.HeaderSequence) != "" || len(m.Header) != 2 {
					t.Fatalf("message %+v", m)
				}
			case *client.Error:
				var ce *client.Error
				if !errors.As(err, &ce) || ce.Code != 503 || errors.Is(err, jetstream.ErrMsgNotFound) || m != nil {
					t.Fatalf("got %v, %v", m, err)
				}
			default:
				if !errors.Is(err, want) || m != nil {
					t.Fatalf("got %v, %v; want %v", m, err, want)
				}
				if want == jetstream.ErrMsgNotFound && !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Fatalf("%v: JetStream has no stream S", err)
				}
			}
		})
	}
}

func TestPeerRange(t *testing.T) {
	e := newPeerEnv(t)
	subject := client.RangeSubject(client.DefaultPrefix, "S")
	m := func(seq uint64) *nats.Msg { return msgReply("S", seq, "s.x", "d") }
	for _, tc := range []struct {
		name    string
		batches [][]*nats.Msg // the replies to the requests in turn; past the end, none
		want    []uint64
		err     error
		starts  []uint64 // start_seq of the requests
	}{
		{"paged", [][]*nats.Msg{{m(1), m(2), rangeEnd(2, 5)}, {m(3), m(5), rangeEnd(5, 0)}}, []uint64{1, 2, 3, 5}, nil, []uint64{1, 3}},
		{"gaps between batches", [][]*nats.Msg{{m(1), rangeEnd(9, 3)}, {m(10), rangeEnd(12, 0)}}, []uint64{1, 10}, nil, []uint64{1, 10}},
		{"empty", [][]*nats.Msg{{rangeEnd(0, 0)}}, nil, nil, []uint64{1}},
		{"out of order", [][]*nats.Msg{{m(2), m(1), rangeEnd(2, 0)}}, []uint64{2}, client.ErrInvalidReply, nil},
		{"no progress", [][]*nats.Msg{{rangeEnd(0, 4)}}, nil, client.ErrInvalidReply, nil},
		{"end before its messages", [][]*nats.Msg{{m(5), rangeEnd(3, 1)}}, []uint64{5}, client.ErrInvalidReply, nil},
		{"end without headers", [][]*nats.Msg{{m(1), eob()}}, []uint64{1}, client.ErrInvalidReply, nil},
		{"a bad message", [][]*nats.Msg{{msgReply("S", 1, "s.x", "d", client.HeaderSequence, "0")}}, nil, client.ErrInvalidReply, nil},
		{"error in a batch", [][]*nats.Msg{{m(1), errReply("503", "tier unavailable")}}, []uint64{1}, &client.Error{}, nil},
		{"stream not archived", [][]*nats.Msg{{errReply("404", "stream \"S\" is not archived")}}, nil, jetstream.ErrStreamNotFound, nil},
		{"end never sent", [][]*nats.Msg{{m(1)}}, []uint64{1}, context.DeadlineExceeded, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.peer(t, subject, func(n int, _ *nats.Msg) []*nats.Msg {
				if n < len(tc.batches) {
					return tc.batches[n]
				}
				return nil
			})
			var (
				got []uint64
				err error
			)
			for m, e := range e.c.Range(ctxFor(t, 500*time.Millisecond), "S", client.RangeOptions{}) {
				if e != nil {
					err = e
					break
				}
				got = append(got, m.Sequence)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			var ce *client.Error
			switch {
			case tc.err == nil && err != nil:
				t.Fatal(err)
			case tc.err == nil:
			case errors.Is(tc.err, context.DeadlineExceeded) || errors.Is(tc.err, client.ErrInvalidReply) || errors.Is(tc.err, jetstream.ErrStreamNotFound):
				if !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
			case !errors.As(err, &ce) || ce.Code != 503:
				t.Fatalf("error %v, want nts's 503", err)
			}
			if tc.starts != nil {
				var starts []uint64
				for _, body := range p.requests() {
					starts = append(starts, decode[struct {
						StartSeq uint64 `json:"start_seq"`
						MaxBytes int64  `json:"max_bytes"`
					}](t, []byte(body)).StartSeq)
				}
				if !slices.Equal(starts, tc.starts) {
					t.Fatalf("requests from %v, want %v", starts, tc.starts)
				}
			}
		})
	}
}
