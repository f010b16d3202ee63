package service

import (
	"slices"

	"github.com/nats-io/nats.go"
)

// appendHeader appends a message's parsed headers to dst as NATS header
// bytes, and returns them with keys, a scratch slice the caller may pass
// again: an ingest encodes the headers of every message that has some into
// the same two buffers, since the builder copies them.
//
// nats.go hands a consumer its headers parsed into a map, so the archive
// keeps them as NATS defines them: every key with its case, every value of a
// repeated key in order. Distinct keys are written in sorted order, which is
// the one thing a byte-level comparison with the published header can tell
// apart; every NATS client reads the two the same. No headers append
// nothing.
func appendHeader(dst []byte, keys []string, h nats.Header) ([]byte, []string) {
	if len(h) == 0 {
		return dst, keys
	}
	keys = keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, "NATS/1.0\r\n"...)
	for _, k := range keys {
		for _, v := range h[k] {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return append(dst, "\r\n"...), keys
}
