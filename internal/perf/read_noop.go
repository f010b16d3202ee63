package perf

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Noop is a micro service of one endpoint that answers every request at
// once with an empty reply: the round trip under every nts request (the
// requester's connection, the server, a micro handler on a connection of
// its own, and back), against which read latencies are judged. Its methods
// are safe for concurrent use.
type Noop struct {
	svc     micro.Service
	subject string
	once    sync.Once
	err     error
}

// StartNoop registers a Noop on nc, which should be a connection of its own
// as an nts replica's is, not the requester's. Its subject is unique to it.
func StartNoop(nc *nats.Conn) (*Noop, error) {
	n := &Noop{subject: "_nts_perf.noop." + nuid.Next()}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "nts-perf-noop",
		Version:     "1.0.0",
		Description: "answers every request with an empty reply",
		Endpoint: &micro.EndpointConfig{
			Subject: n.subject,
			Handler: micro.HandlerFunc(func(req micro.Request) { _ = req.Respond(nil) }),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("noop micro service: %w", err)
	}
	n.svc = svc
	return n, nil
}

// Subject returns the subject the Noop answers on.
func (n *Noop) Subject() string { return n.subject }

// Probe returns a Probe that sends one empty request to the Noop from
// requester and checks the reply is empty and no error.
func (n *Noop) Probe(requester *nats.Conn) Probe {
	return func(ctx context.Context) error {
		m, err := request(ctx, requester, n.subject, nil)
		if err != nil {
			return err
		}
		if err := errorReply(n.subject, m); err != nil {
			return err
		}
		if len(m.Data) != 0 {
			return fmt.Errorf("%w: %s answered %d bytes", ErrCheck, n.subject, len(m.Data))
		}
		return nil
	}
}

// Stop stops the micro service. It is idempotent.
func (n *Noop) Stop() error {
	n.once.Do(func() { n.err = n.svc.Stop() })
	return n.err
}
