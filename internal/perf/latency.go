package perf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrCheck is wrapped by the errors of the read measurements when a reply is
// not what was asked for: an error reply, another message, another tier, a
// payload that differs from what was published.
var ErrCheck = errors.New("perf: unexpected reply")

// Latency summarizes the durations of one operation.
type Latency struct {
	// N is the number of samples.
	N int
	// Mean is their mean; P50 and P99 are nearest-rank percentiles; Max is
	// the slowest.
	Mean, P50, P99, Max time.Duration
}

// String formats l for a table: "p50 112µs p99 301µs mean 130µs (n=2000)".
func (l Latency) String() string {
	return fmt.Sprintf("p50 %v p99 %v mean %v (n=%d)", roundLatency(l.P50), roundLatency(l.P99), roundLatency(l.Mean), l.N)
}

// roundLatency rounds d to three significant digits or a microsecond, whichever
// is coarser, for display.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Recorder collects durations and summarizes them. The zero value is ready
// for use. A Recorder is not safe for concurrent use.
type Recorder struct {
	samples []time.Duration
}

// Add records one duration.
func (r *Recorder) Add(d time.Duration) { r.samples = append(r.samples, d) }

// Len returns the number of durations recorded.
func (r *Recorder) Len() int { return len(r.samples) }

// Latency summarizes the durations recorded so far; the zero Latency when
// there are none.
func (r *Recorder) Latency() Latency {
	n := len(r.samples)
	if n == 0 {
		return Latency{}
	}
	s := slices.Clone(r.samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Latency{N: n, Mean: sum / time.Duration(n), P50: nearestRank(s, 50), P99: nearestRank(s, 99), Max: s[n-1]}
}

// nearestRank returns the nearest-rank p-th percentile of sorted, which is not
// empty.
func nearestRank(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Probe is one operation to time: typically a request and the check of its
// reply. A Probe is called from one goroutine at a time.
type Probe func(ctx context.Context) error

// Measure times probes round-robin, one call of each per round: warmup
// rounds that are not recorded, then n recorded rounds. It returns one
// Latency per probe, in the order given. Interleaving the probes puts each
// under the same conditions (a busy machine slows all of them alike), so
// ratios between them hold better than the figures themselves. It stops at
// the first error, wrapped with the probe's position and the round.
func Measure(ctx context.Context, warmup, n int, probes ...Probe) ([]Latency, error) {
	recs := make([]Recorder, len(probes))
	for i := range recs {
		recs[i].samples = make([]time.Duration, 0, n)
	}
	for round := range warmup + n {
		for i, p := range probes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			start := time.Now()
			if err := p(ctx); err != nil {
				return nil, fmt.Errorf("probe %d, round %d: %w", i, round, err)
			}
			if round >= warmup {
				recs[i].Add(time.Since(start))
			}
		}
	}
	out := make([]Latency, len(probes))
	for i := range recs {
		out[i] = recs[i].Latency()
	}
	return out, nil
}

// Ratio returns a / b as a float, 0 when b is 0: how many times b a
// duration a is.
func Ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
