package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// GetMsg returns message seq of stream: from JetStream when it holds it,
// else from nts. When neither has it the error wraps
// jetstream.ErrMsgNotFound (and jetstream.ErrStreamNotFound when JetStream
// no longer has the stream); when nts is asked, it is an *Error with nts's
// description. An archived message stored before the stream JetStream
// holds was created is of an earlier stream of that name: not found (see
// Range for mirrors).
func (c *Client) GetMsg(ctx context.Context, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	if err := c.checkStream(stream); err != nil {
		return nil, err
	}
	if seq == 0 {
		return nil, fmt.Errorf("%w: sequence 0: sequences start at 1", ErrInvalidArgument)
	}
	m, err := fromStream(ctx, c, stream, func(s jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return s.GetMsg(ctx, seq)
	})
	sentinels, err := fallback(err, jetstream.ErrMsgNotFound, jetstream.ErrStreamNotFound)
	if err != nil || sentinels == nil {
		return m, err
	}
	subject := GetSubject(c.prefix, stream, seq)
	reply, err := c.request(ctx, subject, nil)
	if err != nil {
		return nil, notFound(err, sentinels...)
	}
	m, err = parseMsg(subject, reply)
	if err == nil && m.Sequence != seq {
		err = fmt.Errorf("%w: %s: answered with seq %d", ErrInvalidReply, subject, m.Sequence)
	}
	if err != nil {
		return nil, err
	}
	return c.sameIncarnation(stream, m)
}

// GetLastMsgForSubject returns the newest message of stream on subject
// (which may hold wildcards): from JetStream when it holds one, else the
// newest archived one. Errors are those of GetMsg.
func (c *Client) GetLastMsgForSubject(ctx context.Context, stream, subject string) (*jetstream.RawStreamMsg, error) {
	if err := c.checkStream(stream); err != nil {
		return nil, err
	}
	if !validFilter(subject) {
		return nil, fmt.Errorf("%w: subject %q", ErrInvalidArgument, subject)
	}
	m, err := fromStream(ctx, c, stream, func(s jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return s.GetLastMsgForSubject(ctx, subject)
	})
	sentinels, err := fallback(err, jetstream.ErrMsgNotFound, jetstream.ErrStreamNotFound)
	if err != nil || sentinels == nil {
		return m, err
	}
	nts := LastSubject(c.prefix, stream)
	reply, err := c.request(ctx, nts, struct {
		Subject string `json:"subject"`
	}{subject})
	if err != nil {
		return nil, notFound(err, sentinels...)
	}
	m, err = parseMsg(nts, reply)
	if err != nil {
		return nil, err
	}
	return c.sameIncarnation(stream, m)
}

// sameIncarnation returns m, archived from stream, unless JetStream holds a
// stream of that name created after m was stored: m is then of an earlier
// incarnation of the stream (archived under the plain name), and the
// stream JetStream holds has no such message.
func (c *Client) sameIncarnation(stream string, m *jetstream.RawStreamMsg) (*jetstream.RawStreamMsg, error) {
	if created := c.created(stream); m.Time.Before(created) {
		return nil, fmt.Errorf("%w: the archived seq %d of %s, stored %v, is of an earlier stream of that name, created again %v",
			jetstream.ErrMsgNotFound, m.Sequence, stream, m.Time.UTC(), created.UTC())
	}
	return m, nil
}

// fallback decides on JetStream's answer err: when nts is to be asked
// (JetStream answered notFound, or that it has no such stream or bucket) it
// returns the sentinels a 404 of nts stands for: notFound, and gone when
// the stream or bucket is gone. It returns nil sentinels and a nil error
// when JetStream answered, and JetStream's error when it failed otherwise.
func fallback(err, notFound, gone error) ([]error, error) {
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, gone), errors.Is(err, jetstream.ErrStreamNotFound):
		return []error{notFound, gone}, nil
	case errors.Is(err, notFound):
		return []error{notFound}, nil
	}
	return nil, err
}

// checkStream checks the client and a stream name before a request.
func (c *Client) checkStream(stream string) error {
	if c.err != nil {
		return c.err
	}
	if !validStream(stream) {
		return fmt.Errorf("%w: %q", jetstream.ErrInvalidStreamName, stream)
	}
	return nil
}

// parseMsg turns a message reply of nts to a request on subject into the
// message it carries. The direct-get headers become the message's fields
// and are removed; the original headers stay, with HeaderTier. The payload
// is the reply's.
func parseMsg(subject string, m *nats.Msg) (*jetstream.RawStreamMsg, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidReply, subject, fmt.Sprintf(format, args...))
	}
	h := m.Header
	if h.Get(HeaderStream) == "" {
		return nil, bad("no %s header", HeaderStream)
	}
	seq, err := strconv.ParseUint(h.Get(HeaderSequence), 10, 64)
	if err != nil || seq == 0 {
		return nil, bad("%s %q", HeaderSequence, h.Get(HeaderSequence))
	}
	subj := h.Get(HeaderSubject)
	if subj == "" {
		return nil, bad("no %s header", HeaderSubject)
	}
	ts, err := time.Parse(time.RFC3339Nano, h.Get(HeaderTimeStamp))
	if err != nil {
		return nil, bad("%s %q", HeaderTimeStamp, h.Get(HeaderTimeStamp))
	}
	out := make(nats.Header, len(h))
	for k, vs := range h {
		switch k {
		case HeaderStream, HeaderSequence, HeaderSubject, HeaderTimeStamp:
		default:
			out[k] = vs
		}
	}
	return &jetstream.RawStreamMsg{Subject: subj, Sequence: seq, Header: out, Data: m.Data, Time: ts}, nil
}

// validFilter reports whether f is a subject filter: dot-separated
// non-empty tokens without whitespace, "*" and ">" whole tokens, ">" last.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	var last bool
	for tok := range strings.SplitSeq(f, ".") {
		if last {
			return false
		}
		switch {
		case tok == "*":
		case tok == ">":
			last = true
		case !validToken(tok):
			return false
		}
	}
	return true
}
