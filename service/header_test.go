package service

import (
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestAppendHeader encodes headers with repeated and mixed-case keys, reads
// them back as a client would, and appends into buffers already in use.
func TestAppendHeader(t *testing.T) {
	h := nats.Header{}
	h.Set("KV-Operation", "DEL")
	h.Add("X-Multi", "one")
	h.Add("X-Multi", "two")
	h["lower-case"] = []string{"kept as is"}
	got, keys := appendHeader([]byte("prefix"), nil, h)
	want := "prefixNATS/1.0\r\nKV-Operation: DEL\r\nX-Multi: one\r\nX-Multi: two\r\nlower-case: kept as is\r\n\r\n"
	if string(got) != want {
		t.Fatalf("appendHeader = %q, want %q", got, want)
	}
	back, err := nats.DecodeHeadersMsg(got[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, h) {
		t.Fatalf("read back %v, want %v", back, h)
	}
	// The scratch slices serve the next message, whose headers replace
	// the last one's.
	h2 := nats.Header{"Nats-Msg-Id": {"42"}}
	got2, _ := appendHeader(got[:0], keys, h2)
	if want2 := "NATS/1.0\r\nNats-Msg-Id: 42\r\n\r\n"; string(got2) != want2 {
		t.Fatalf("second appendHeader = %q, want %q", got2, want2)
	}
	if out, _ := appendHeader([]byte("x"), nil, nil); string(out) != "x" {
		t.Fatalf("no headers appended %q", out)
	}
}

// BenchmarkAppendHeader encodes a KV delete marker's headers into the
// buffers of the message before, as the ingest does.
func BenchmarkAppendHeader(b *testing.B) {
	h := nats.Header{}
	h.Set("KV-Operation", "DEL")
	h.Set("Nats-Msg-Id", "0123456789")
	var buf []byte
	var keys []string
	b.ReportAllocs()
	for b.Loop() {
		buf, keys = appendHeader(buf[:0], keys, h)
	}
}
