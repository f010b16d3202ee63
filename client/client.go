package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTimeout bounds one request to nts, and the wait for each message of
// a batched reply, when the caller's context has no deadline.
const DefaultTimeout = 5 * time.Second

// Client reads streams, KV buckets and object stores from JetStream and,
// for what JetStream no longer holds, from nts. It is safe for concurrent
// use. The messages, entries and infos it returns belong to the caller.
type Client struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	err     error // an invalid option or connection, returned by every call
	prefix  string
	timeout time.Duration

	mu      sync.Mutex
	streams map[string]jetstream.Stream // handles by name, for GetMsg
}

// Option configures a Client.
type Option func(*Client)

// WithPrefix sets the first token of the nts subjects, the service's
// "service.prefix" (default DefaultPrefix).
func WithPrefix(prefix string) Option { return func(c *Client) { c.prefix = prefix } }

// WithJetStream makes the client use js (with its domain, API prefix and
// default timeout) instead of jetstream.New(nc).
func WithJetStream(js jetstream.JetStream) Option { return func(c *Client) { c.js = js } }

// WithTimeout sets the timeout of a request to nts, and of the wait for
// each message of a batched reply, when the caller's context has no
// deadline (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client reading through nc. An invalid option, or a nil
// connection, is reported by every call of the client.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, prefix: DefaultPrefix, timeout: DefaultTimeout, streams: map[string]jetstream.Stream{}}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	switch {
	case nc == nil:
		c.err = fmt.Errorf("%w: nil connection", ErrInvalidArgument)
	case !validPrefix(c.prefix):
		c.err = fmt.Errorf("%w: prefix %q is not a subject of literal tokens", ErrInvalidArgument, c.prefix)
	case c.timeout <= 0:
		c.err = fmt.Errorf("%w: timeout %v is not positive", ErrInvalidArgument, c.timeout)
	case c.js == nil:
		c.js, c.err = jetstream.New(nc)
	}
	return c
}

// JetStream returns the JetStream context the client reads through first.
// It is nil when New reported an error.
func (c *Client) JetStream() jetstream.JetStream { return c.js }

// Prefix returns the first token of the nts subjects the client asks.
func (c *Client) Prefix() string { return c.prefix }

// withTimeout returns ctx with the client's timeout when ctx has no
// deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// stream returns JetStream's handle of a stream, from the client's cache
// when it has one (cached reports which).
func (c *Client) stream(ctx context.Context, name string) (s jetstream.Stream, cached bool, err error) {
	c.mu.Lock()
	s, ok := c.streams[name]
	c.mu.Unlock()
	if ok {
		return s, true, nil
	}
	s, err = c.js.Stream(ctx, name)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	c.streams[name] = s
	c.mu.Unlock()
	return s, false, nil
}

// created returns the creation time of the stream JetStream holds under
// name, as its cached handle has it: zero when there is none.
func (c *Client) created(name string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.streams[name]; ok {
		return createdBefore(s.CachedInfo())
	}
	return time.Time{}
}

// createdBefore returns the time before which no message of the stream info
// describes was stored: its creation, or zero for a mirror or a stream with
// sources, which store messages with the time their origin stored them.
func createdBefore(info *jetstream.StreamInfo) time.Time {
	if info == nil || info.Config.Mirror != nil || len(info.Config.Sources) > 0 {
		return time.Time{}
	}
	return info.Created
}

// forget drops the cached handle of a stream.
func (c *Client) forget(name string) {
	c.mu.Lock()
	delete(c.streams, name)
	c.mu.Unlock()
}

// fromStream runs f on JetStream's handle of a stream. A cached handle may
// be stale (the stream deleted, or created again with other settings): when
// f fails other than with ErrMsgNotFound, the handle is looked up afresh
// and f tried once more.
func fromStream[T any](ctx context.Context, c *Client, name string, f func(jetstream.Stream) (T, error)) (T, error) {
	var zero T
	s, cached, err := c.stream(ctx, name)
	if err != nil {
		return zero, err
	}
	v, err := f(s)
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) || !cached {
		return v, err
	}
	c.forget(name)
	if s, _, err = c.stream(ctx, name); err != nil {
		return zero, err
	}
	return f(s)
}

// validPrefix reports whether p is one or more literal subject tokens.
func validPrefix(p string) bool {
	for tok := range strings.SplitSeq(p, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// validToken reports whether t is a literal subject token: not empty, no
// wildcard, no whitespace or control character.
func validToken(t string) bool {
	if t == "" || t == "*" || t == ">" {
		return false
	}
	for _, r := range t {
		if r <= ' ' || r == 0x7f || r == '.' {
			return false
		}
	}
	return true
}

// validStream reports whether name can be a stream's name in a subject: a
// literal token without the characters JetStream refuses in names.
func validStream(name string) bool {
	return validToken(name) && !strings.ContainsAny(name, "*>/\\")
}

// bucketErr returns jetstream.ErrBucketNotFound for an error of JetStream's
// handle of a bucket (its stream named stream) that says the bucket is
// gone: JetStream says so, or a direct get found no responder (a handle
// made before the stream was deleted) and the stream is indeed not found.
// It returns other errors as they are.
func (c *Client) bucketErr(ctx context.Context, stream string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound),
		errors.Is(err, nats.ErrStreamNotFound): // watches subscribe through nats.go's older JetStream API
		return jetstream.ErrBucketNotFound
	case errors.Is(err, nats.ErrNoResponders):
		if _, serr := c.js.Stream(ctx, stream); errors.Is(serr, jetstream.ErrStreamNotFound) {
			c.forget(stream)
			return jetstream.ErrBucketNotFound
		}
	}
	return err
}
