package perf

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/service"
)

// NotArchived returns a Probe that asks for message seq of t's stream with
// msg.get, seq being one the archive does not hold, and checks the answer
// is a 404 error reply: the index alone answers it. TierReads before and
// after tells whether any tier was read for it.
func NotArchived(nc *nats.Conn, t Target, seq uint64) Probe {
	subj := client.GetSubject(t.prefix(), t.Stream, seq)
	return func(ctx context.Context) error {
		m, err := request(ctx, nc, subj, nil)
		if err != nil {
			return err
		}
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "404" {
			return fmt.Errorf("%w: %s answered code %q (%q, %d bytes), want 404", ErrCheck, subj,
				code, m.Header.Get(micro.ErrorHeader), len(m.Data))
		}
		return nil
	}
}

// TierReads returns how many block reads each tier of the replica answering
// admin.status under prefix (empty: client.DefaultPrefix) made since it
// started, by tier name, and their sum.
func TierReads(ctx context.Context, nc *nats.Conn, prefix string) (map[string]int64, int64, error) {
	t := Target{Prefix: prefix}
	var st service.Status
	if err := ntsRequest(ctx, nc, t.prefix()+".admin.status", nil, &st); err != nil {
		return nil, 0, err
	}
	if len(st.Tiers) == 0 {
		return nil, 0, fmt.Errorf("%w: admin.status of %s lists no tier", ErrCheck, st.Instance)
	}
	out := map[string]int64{}
	var sum int64
	for _, ts := range st.Tiers {
		out[ts.Tier] = ts.Reads
		sum += ts.Reads
	}
	return out, sum, nil
}
