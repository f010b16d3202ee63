package perf

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRecorderLatency(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"none", nil, Latency{}},
		{"one", []time.Duration{ms(7)}, Latency{N: 1, Mean: ms(7), P50: ms(7), P99: ms(7), Max: ms(7)}},
		{"two", []time.Duration{ms(9), ms(1)}, Latency{N: 2, Mean: ms(5), P50: ms(1), P99: ms(9), Max: ms(9)}},
		{"1 to 100, shuffled", shuffled(100), Latency{N: 100, Mean: 50500 * time.Microsecond, P50: ms(50), P99: ms(99), Max: ms(100)}},
		{"1 to 1000", shuffled(1000), Latency{N: 1000, Mean: 500500 * time.Microsecond, P50: ms(500), P99: ms(990), Max: ms(1000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Recorder
			for _, d := range tc.samples {
				r.Add(d)
			}
			if got := r.Latency(); got != tc.want || r.Len() != len(tc.samples) {
				t.Fatalf("Latency() = %+v (Len %d), want %+v", got, r.Len(), tc.want)
			}
			// Summarizing does not reorder what was recorded.
			for i, d := range tc.samples {
				if r.samples[i] != d {
					t.Fatalf("sample %d changed to %v", i, r.samples[i])
				}
			}
		})
	}
}

// shuffled returns 1..n milliseconds in a fixed scrambled order.
func shuffled(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration((i*37)%n+1) * time.Millisecond
	}
	return out
}

func TestMeasure(t *testing.T) {
	ctx := context.Background()
	t.Run("interleaves and skips the warmup", func(t *testing.T) {
		var order []int
		probe := func(i int) Probe {
			return func(context.Context) error {
				order = append(order, i)
				if i == 1 {
					time.Sleep(time.Millisecond) // the slower probe
				}
				return nil
			}
		}
		lat, err := Measure(ctx, 2, 5, probe(0), probe(1))
		if err != nil {
			t.Fatal(err)
		}
		if len(order) != 14 || order[0] != 0 || order[1] != 1 || order[12] != 0 || order[13] != 1 {
			t.Fatalf("calls %v, want 7 rounds of 0, 1", order)
		}
		if lat[0].N != 5 || lat[1].N != 5 || lat[1].P50 < time.Millisecond || lat[0].P50 >= lat[1].P50 {
			t.Fatalf("latencies %+v", lat)
		}
	})
	t.Run("stops at the first error", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		_, err := Measure(ctx, 0, 10, func(context.Context) error {
			if calls++; calls == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || calls != 3 {
			t.Fatalf("after %d calls: %v", calls, err)
		}
	})
	t.Run("stops when ctx is done", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Measure(cctx, 0, 10, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Measure: %v", err)
		}
	})
}

func TestSeqPayload(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
		size int
		data func() []byte
		ok   bool
	}{
		{"itself", 42, 1024, func() []byte { return SeqPayload(42, 1024) }, true},
		{"odd size", 42, 1021, func() []byte { return SeqPayload(42, 1021) }, true},
		{"another seq", 42, 1024, func() []byte { return SeqPayload(43, 1024) }, false},
		{"shorter", 42, 1024, func() []byte { return SeqPayload(42, 1023) }, false},
		{"one byte flipped", 42, 1024, func() []byte {
			b := SeqPayload(42, 1024)
			b[700] ^= 1
			return b
		}, false},
		{"seq in front only", 42, 1024, func() []byte {
			b := make([]byte, 1024)
			copy(b, SeqPayload(42, 8))
			return b
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSeqPayload(tc.seq, tc.size, tc.data())
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrCheck)) {
				t.Fatalf("checkSeqPayload: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if a, b := SeqPayload(1, 64), SeqPayload(2, 64); string(a[8:]) == string(b[8:]) {
		t.Fatal("two seqs have the same payload after the seq")
	}
}
