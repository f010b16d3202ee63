package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/service"
)

// Pages of RangeScan: as many messages and bytes as a subscription holds
// unread by default (nats.DefaultSubPendingMsgsLimit, 64 MiB), with room to
// spare, so that a page never waits on the requester and few round trips
// separate pages.
const (
	scanPageMsgs  = 50_000
	scanPageBytes = 32 << 20
)

// scanPageTimeout bounds the wait for each message of a page.
const scanPageTimeout = time.Minute

// RangeScan reads n messages of t's stream from seq start on with msg.range,
// page after page, each page starting after the last one's Nts-Last-Seq,
// and returns the time from the first request to the end of the last page.
// Every message is checked as PointReads checks its reply (tierName empty:
// any tier), and, when t.Size is set, the seqs must run start, start+1, ...
// without a gap.
func RangeScan(ctx context.Context, nc *nats.Conn, t Target, tierName string, start uint64, n int) (time.Duration, error) {
	if n < 1 || start < 1 {
		return 0, fmt.Errorf("perf: range scan of %d messages from seq %d", n, start)
	}
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	subj := client.RangeSubject(t.prefix(), t.Stream)
	end := start + uint64(n) - 1
	next, got := start, 0
	begin := time.Now()
	for got < n {
		body, err := json.Marshal(service.RangeRequest{StartSeq: next, EndSeq: end, MaxMsgs: scanPageMsgs, MaxBytes: scanPageBytes})
		if err != nil {
			return 0, err
		}
		if err := nc.PublishRequest(subj, inbox, body); err != nil {
			return 0, fmt.Errorf("request %s: %w", subj, err)
		}
		last, pending, err := scanPage(ctx, sub, t, tierName, next, &got)
		if err != nil {
			return 0, fmt.Errorf("page from seq %d: %w", next, err)
		}
		switch {
		case got >= n:
		case last < next:
			return 0, fmt.Errorf("%w: %s: a page from seq %d ended at seq %d", ErrCheck, subj, next, last)
		case pending == 0:
			return 0, fmt.Errorf("%w: %s: the range ended after %d of %d messages", ErrCheck, subj, got, n)
		}
		next = last + 1
	}
	return time.Since(begin), nil
}

// scanPage reads one page of a range, up to its end-of-batch message,
// counting the messages in *got, and returns the end's Nts-Last-Seq and
// Nts-Num-Pending.
func scanPage(ctx context.Context, sub *nats.Subscription, t Target, tierName string, from uint64, got *int) (last, pending uint64, err error) {
	want := from // next seq expected when t.Size is set
	for {
		mctx, cancel := context.WithTimeout(ctx, scanPageTimeout)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return 0, 0, err
		}
		if err := errorReply(sub.Subject, m); err != nil {
			return 0, 0, err
		}
		if client.IsEndOfBatch(m) {
			last, err1 := strconv.ParseUint(m.Header.Get(client.HeaderLastSeq), 10, 64)
			pending, err2 := strconv.ParseUint(m.Header.Get(client.HeaderNumPending), 10, 64)
			if err1 != nil || err2 != nil {
				return 0, 0, fmt.Errorf("%w: end of batch with %s %q and %s %q", ErrCheck,
					client.HeaderLastSeq, m.Header.Get(client.HeaderLastSeq), client.HeaderNumPending, m.Header.Get(client.HeaderNumPending))
			}
			return last, pending, nil
		}
		seq, err := strconv.ParseUint(m.Header.Get(client.HeaderSequence), 10, 64)
		if err != nil || seq < want {
			return 0, 0, fmt.Errorf("%w: message %q after seq %d", ErrCheck, m.Header.Get(client.HeaderSequence), want-1)
		}
		if t.Size != 0 && seq != want {
			return 0, 0, fmt.Errorf("%w: seq %d where %d was due", ErrCheck, seq, want)
		}
		if err := checkMsg(t, tierName, seq, m); err != nil {
			return 0, 0, err
		}
		want = seq + 1
		*got++
	}
}

// Replay reads n messages of t's stream from seq start on through a
// JetStream ordered consumer, checking each as RangeScan does, and returns
// the time from the consumer's creation to the last message: the reference
// for RangeScan. The consumer is deleted when Replay returns.
func Replay(ctx context.Context, js jetstream.JetStream, t Target, start uint64, n int) (time.Duration, error) {
	if n < 1 || start < 1 {
		return 0, fmt.Errorf("perf: replay of %d messages from seq %d", n, start)
	}
	begin := time.Now()
	cons, err := js.OrderedConsumer(ctx, t.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer of %s: %w", t.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(4096, 16<<20))
	if err != nil {
		return 0, err
	}
	defer func() {
		it.Stop()
		if info := cons.CachedInfo(); info != nil {
			_ = js.DeleteConsumer(context.WithoutCancel(ctx), t.Stream, info.Name)
		}
	}()
	want := start
	for i := 0; i < n; i++ {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("after %d messages: %w", i, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		seq := meta.Sequence.Stream
		if seq < want || (t.Size != 0 && seq != want) {
			return 0, fmt.Errorf("%w: replay: seq %d where %d was due", ErrCheck, seq, want)
		}
		if t.Size != 0 {
			if err := checkSeqPayload(seq, t.Size, m.Data()); err != nil {
				return 0, err
			}
		}
		want = seq + 1
	}
	return time.Since(begin), nil
}
