package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/internal/testenv"
)

// A peer answers nts subjects with replies written by the test, as a
// replica that follows the wire protocol, or breaks it, would: the tests of
// this file check what the client makes of each reply. It runs on a real
// NATS server with JetStream, where the streams and buckets asked for do
// not exist, so that every read falls back to the peer.

// peerEnv is a NATS server without any nts replica.
type peerEnv struct {
	nc *nats.Conn
	c  *client.Client
}

func newPeerEnv(t testing.TB) *peerEnv {
	t.Helper()
	nc := testenv.Connect(t, testenv.RunNATS(t))
	return &peerEnv{nc: nc, c: client.New(nc, client.WithTimeout(2*time.Second))}
}

// peer answers the requests on subject with the messages reply returns,
// until the test ends, and keeps the requests' bodies.
type peer struct {
	mu     sync.Mutex
	bodies []string
}

func (p *peer) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}

func (e *peerEnv) peer(t testing.TB, subject string, reply func(n int, req *nats.Msg) []*nats.Msg) *peer {
	t.Helper()
	p := &peer{}
	sub, err := e.nc.Subscribe(subject, func(req *nats.Msg) {
		p.mu.Lock()
		n := len(p.bodies)
		p.bodies = append(p.bodies, string(req.Data))
		p.mu.Unlock()
		for _, m := range reply(n, req) {
			m.Subject = req.Reply
			if err := e.nc.PublishMsg(m); err != nil {
				t.Errorf("peer reply: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return p
}

// msgReply is a message reply: stream, seq, subject, payload, headers.
func msgReply(stream string, seq uint64, subject, data string, kv ...string) *nats.Msg {
	m := nats.NewMsg("")
	m.Data = []byte(data)
	m.Header.Set(client.HeaderStream, stream)
	m.Header.Set(client.HeaderSequence, strconv.FormatUint(seq, 10))
	m.Header.Set(client.HeaderSubject, subject)
	m.Header.Set(client.HeaderTimeStamp, time.Unix(1700000000, int64(seq)).UTC().Format(time.RFC3339Nano))
	m.Header.Set(client.HeaderTier, "file")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			m.Header.Del(kv[i])
		} else {
			m.Header.Set(kv[i], kv[i+1])
		}
	}
	return m
}

// eob is an end-of-batch message with headers kv.
func eob(kv ...string) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set(client.HeaderStatus, client.StatusEndOfBatch)
	m.Header.Set(client.HeaderDescription, "EOB")
	for i := 0; i+1 < len(kv); i += 2 {
		m.Header.Set(kv[i], kv[i+1])
	}
	return m
}

// rangeEnd is msg.range's end of batch.
func rangeEnd(last, pending uint64) *nats.Msg {
	return eob(client.HeaderLastSeq, strconv.FormatUint(last, 10), client.HeaderNumPending, strconv.FormatUint(pending, 10))
}

// errReply is a micro error reply.
func errReply(code, desc string) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set(micro.ErrorCodeHeader, code)
	m.Header.Set(micro.ErrorHeader, desc)
	return m
}

func msgs(m ...*nats.Msg) []*nats.Msg { return m }

// decode decodes a request body for a peer; a body it cannot decode fails
// the test.
func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if len(body) > 0 {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("request body %q: %v", body, err)
		}
	}
	return v
}

// digest is an object's digest as its info holds it.
func digest(data []byte) string {
	h := sha256.New()
	h.Write(data)
	return jetstream.GetObjectDigestValue(h)
}

// ctxFor returns a context with a timeout for one call of a test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
