package service

import (
	"bytes"
	"slices"

	"github.com/nats-io/nats.go"
)

// encodeHeader turns a message's parsed headers back into NATS header bytes.
//
// nats.go hands a consumer its headers parsed into a map, so the archive
// keeps them as NATS defines them: every key with its case, every value of a
// repeated key in order. Distinct keys are written in sorted order, which is
// the one thing a byte-level comparison with the published header can tell
// apart; every NATS client reads the two the same.
func encodeHeader(h nats.Header) []byte {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	size := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		keys = append(keys, k)
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString("NATS/1.0\r\n")
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
