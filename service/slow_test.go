package service_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/service"
)

// TestSlowRequester pages through ORDERS with a requester that takes 2 ms
// per message and holds at most 16 messages or 64 KiB unread, as a client
// with small pending limits does: each batch it asks for fits what it can
// hold, so the replica never sends more than that before it asks again, and
// nothing is dropped. Meanwhile other requests are answered: a slow
// requester holds no worker while it reads.
func TestSlowRequester(t *testing.T) {
	e := newAPIEnv(t)
	e.run(t, e.config(t))

	var slow atomic.Int64
	nc := testenv.Connect(t, e.srv, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if err == nats.ErrSlowConsumer {
			slow.Add(1)
		}
	}))
	const maxMsgs, maxBytes = 16, 64 << 10
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(maxMsgs+1, maxBytes+4<<10); err != nil { // a batch and its end marker
		t.Fatal(err)
	}

	// Other requests, from another client, while the slow one reads.
	others := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		<-started
		for i := range 50 {
			seq := uint64(4 + i*7)
			m, err := e.request(fmt.Sprintf("nts.get.ORDERS.%d", seq), nil)
			if err == nil && m.Header.Get(micro.ErrorCodeHeader) != "" {
				err = fmt.Errorf("seq %d: %s %s", seq, m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader))
			}
			if err != nil {
				others <- err
				return
			}
		}
		others <- nil
	}()

	var (
		next    uint64 = 4 // seq 3 does not fit a reply at all
		got     []uint64
		batches int
	)
	for {
		body, _ := json.Marshal(service.RangeRequest{StartSeq: next, MaxMsgs: maxMsgs, MaxBytes: maxBytes})
		if err := nc.PublishRequest("nts.range.ORDERS", inbox, body); err != nil {
			t.Fatal(err)
		}
		if batches == 0 {
			close(started)
		}
		batches++
		n, size := 0, 0
		var end *nats.Msg
		for end == nil {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("batch %d after %d messages: %v", batches, n, err)
			}
			if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
				t.Fatalf("batch %d: %s %s", batches, code, m.Header.Get(micro.ErrorHeader))
			}
			if client.IsEndOfBatch(m) {
				end = m
				break
			}
			time.Sleep(2 * time.Millisecond) // the requester's work
			n++
			size += len(m.Data)
			seq, _ := strconv.ParseUint(m.Header.Get(client.HeaderSequence), 10, 64)
			got = append(got, seq)
		}
		if n > maxMsgs || size > maxBytes {
			t.Fatalf("batch %d: %d messages, %d bytes; asked for at most %d, %d", batches, n, size, maxMsgs, maxBytes)
		}
		last, _ := strconv.ParseUint(end.Header.Get(client.HeaderLastSeq), 10, 64)
		if end.Header.Get(client.HeaderNumPending) == "0" {
			break
		}
		next = last + 1
	}
	if err := <-others; err != nil {
		t.Fatalf("a request while the slow requester read: %v", err)
	}
	if d, _ := sub.Dropped(); d != 0 || slow.Load() != 0 {
		t.Fatalf("the slow requester dropped %d messages (%d slow-consumer errors)", d, slow.Load())
	}
	// Every archived seq from 4 once, in order (seq 10 was deleted before
	// it was archived).
	var want []uint64
	for seq := uint64(4); seq <= e.last; seq++ {
		if seq != 10 {
			want = append(want, seq)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("read %d messages in %d batches, want %d", len(got), batches, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d is seq %d, want %d", i, got[i], want[i])
		}
	}
}
