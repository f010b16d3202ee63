package perf

import (
	"bytes"
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/block/blocktest"
	"github.com/nats-tiered/nts/service"
)

// LogBacklog creates stream (subjects "<stream>.>") and publishes the n
// JSON log lines of blocktest.JSONLogs(seed, n) to it, each on
// "<stream>." + its subject, with its headers.
func LogBacklog(ctx context.Context, js jetstream.JetStream, stream string, n int, seed int64) error {
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}}); err != nil {
		return fmt.Errorf("create %s: %w", stream, err)
	}
	for i, m := range blocktest.JSONLogs(seed, n) {
		msg := &nats.Msg{Subject: stream + "." + m.Subject, Data: m.Data}
		if len(m.Header) > 0 {
			h, err := parseHeader(m.Header)
			if err != nil {
				return err
			}
			msg.Header = h
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return err
		}
		if i%4096 == 4095 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// parseHeader parses a raw NATS header block ("NATS/1.0\r\nK: V\r\n\r\n"),
// keeping the keys as they are written.
func parseHeader(raw []byte) (nats.Header, error) {
	lines := bytes.Split(bytes.TrimRight(raw, "\r\n"), []byte("\r\n"))
	if len(lines) == 0 || !bytes.HasPrefix(lines[0], []byte("NATS/1.0")) {
		return nil, fmt.Errorf("perf: header block %q does not start with NATS/1.0", raw)
	}
	h := nats.Header{}
	for _, l := range lines[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(k) == 0 {
			return nil, fmt.Errorf("perf: header line %q", l)
		}
		h[string(k)] = append(h[string(k)], string(bytes.TrimSpace(v)))
	}
	return h, nil
}

// Stored returns the stored bytes of t's archive and the raw bytes they
// hold (the blocks' uncompressed frames), as stream.info reports them.
func Stored(ctx context.Context, nc *nats.Conn, t Target) (stored, raw int64, err error) {
	var info service.StreamInfo
	if err := ntsRequest(ctx, nc, t.prefix()+".stream."+t.Stream, nil, &info); err != nil {
		return 0, 0, err
	}
	if info.RawBytes <= 0 || info.Bytes <= 0 {
		return 0, 0, fmt.Errorf("%w: stream.info of %s: %d bytes stored of %d raw", ErrCheck, t.Stream, info.Bytes, info.RawBytes)
	}
	return info.Bytes, info.RawBytes, nil
}
