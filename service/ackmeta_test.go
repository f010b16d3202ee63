package service

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// metadata is what nats.go makes of reply: the reference parseAck follows.
func metadata(reply string) (ackMeta, error) {
	md, err := (&nats.Msg{Reply: reply, Sub: &nats.Subscription{}}).Metadata()
	if err != nil {
		return ackMeta{}, err
	}
	return ackMeta{seq: md.Sequence.Stream, cseq: md.Sequence.Consumer, time: md.Timestamp.UnixNano(), pending: md.NumPending}, nil
}

var ackSubjects = []string{
	"$JS.ACK.ORDERS.nts-ORDERS.1.42.40.1765000000123456789.7",
	"$JS.ACK._.ACCHASH.ORDERS.nts-ORDERS.2.42.40.1765000000123456789.0.rAnD0m",
	"$JS.ACK.hub.ACCHASH.ORDERS.nts-ORDERS.2.42.40.1765000000123456789.0",
	"$JS.ACK.hub.ACCHASH.ORDERS.nts-ORDERS.2.42.40.1765000000123456789.0.x.y",
	"$JS.ACK.S.C.1.18446744073709551615.1.1.0",
	"$JS.ACK.S.C.1.0.1.1.0",      // seq 0
	"$JS.ACK.S.C.1.x1.1.1.0",     // not a number
	"$JS.ACK.S.C.1.5.1.-1.0",     // time not a number
	"$JS.ACK.S.C.1.5.1.1",        // 8 tokens
	"$JS.ACK.S.C.1.5.1.1.0.0",    // 10 tokens
	"$JS.NAK.S.C.1.5.1.1.0",      // not an ack
	"_INBOX.abc.def.1.2.3.4.5.6", // not an ack
	"",
	"$JS.ACK........",
}

func TestParseAck(t *testing.T) {
	for _, r := range ackSubjects {
		checkParseAck(t, r)
	}
	got, err := parseAck(ackSubjects[1])
	if want := (ackMeta{seq: 42, cseq: 40, time: 1765000000123456789}); err != nil || got != want {
		t.Fatalf("parseAck(%q) = %+v, %v; want %+v", ackSubjects[1], got, err, want)
	}
}

// checkParseAck fails t unless parseAck agrees with nats.go on reply: the
// same fields, or an error where nats.go gives one or a stream sequence of
// 0.
func checkParseAck(t *testing.T, reply string) {
	t.Helper()
	got, err := parseAck(reply)
	want, werr := metadata(reply)
	switch {
	case werr != nil || want.seq == 0:
		if err == nil {
			t.Fatalf("parseAck(%q) = %+v, want an error (nats.go: %+v, %v)", reply, got, want, werr)
		}
	case err != nil:
		t.Fatalf("parseAck(%q): %v; nats.go reads %+v", reply, err, want)
	case got != want:
		t.Fatalf("parseAck(%q) = %+v, nats.go reads %+v", reply, got, want)
	}
}

func FuzzParseAck(f *testing.F) {
	for _, r := range ackSubjects {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, reply string) { checkParseAck(t, reply) })
}

func BenchmarkParseAck(b *testing.B) {
	b.Run("nts", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseAck(ackSubjects[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nats.go", func(b *testing.B) {
		for b.Loop() {
			if _, err := metadata(ackSubjects[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
