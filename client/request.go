package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// request sends one request to nts and returns its reply, or the error nts
// answered.
func (c *Client) request(ctx context.Context, subject string, body any) (*nats.Msg, error) {
	data, err := encodeBody(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, fmt.Errorf("nts %s: %w", subject, err)
	}
	if err := replyError(subject, m); err != nil {
		return nil, err
	}
	return m, nil
}

// encodeBody encodes a request body: nil is an empty body.
func encodeBody(body any) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%w: request body: %v", ErrInvalidArgument, err)
	}
	return data, nil
}

// batches receives the batched replies of nts (msg.range, kv.keys,
// kv.history, obj.get, obj.list): the messages of a batch, then its
// end-of-batch message. One subscription serves the requests of one
// operation in turn, each read to its end before the next is sent. Not safe
// for concurrent use, except close.
type batches struct {
	c       *Client
	sub     *nats.Subscription
	subject string // of the request in progress
}

// newBatches subscribes to a new inbox for the replies of one operation.
func (c *Client) newBatches() (*batches, error) {
	sub, err := c.nc.SubscribeSync(c.nc.NewInbox())
	if err != nil {
		return nil, fmt.Errorf("subscribe to an inbox: %w", err)
	}
	return &batches{c: c, sub: sub}, nil
}

// send requests a batch from subject.
func (b *batches) send(subject string, body any) error {
	data, err := encodeBody(body)
	if err != nil {
		return err
	}
	b.subject = subject
	if err := b.c.nc.PublishRequest(subject, b.sub.Subject, data); err != nil {
		return fmt.Errorf("nts %s: %w", subject, err)
	}
	return nil
}

// next returns the next message of the batch in progress (IsEndOfBatch
// tells its end), or the error nts answered instead. It waits for ctx, and
// for the client's timeout when ctx has no deadline.
func (b *batches) next(ctx context.Context) (*nats.Msg, error) {
	ctx, cancel := b.c.withTimeout(ctx)
	defer cancel()
	m, err := b.sub.NextMsgWithContext(ctx)
	if err != nil {
		if errors.Is(err, nats.ErrBadSubscription) {
			err = errClosed
		}
		return nil, fmt.Errorf("nts %s: %w", b.subject, err)
	}
	if err := replyError(b.subject, m); err != nil {
		return nil, err
	}
	return m, nil
}

// close unsubscribes. Idempotent, and safe to call while next waits: next
// then returns an error wrapping errClosed.
func (b *batches) close() {
	_ = b.sub.Unsubscribe() // only fails when already unsubscribed or the connection is closed
}

// errClosed is wrapped by the error of a read after Close.
var errClosed = errors.New("closed")
