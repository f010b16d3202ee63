package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-tiered/nts/internal/perf"
	"github.com/nats-tiered/nts/internal/testenv"
	"github.com/nats-tiered/nts/tier/blob"
)

// TestMain runs main's commands instead of the tests when nts bench starts
// this test binary as its `nts serve` child.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "nts:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinySizes makes a bench run small enough for a test under -race.
func tinySizes(sz *benchSizes) {
	*sz = benchSizes{
		drainSmall: 3000, drainLarge: 600, drainRounds: 1,
		reads: 2000, warmup: 5, samples: 50, blobSamples: 20,
		scaleSmall: 20, scaleLarge: 200, scaleRead: 20,
		logs: 2000, rssBound: 1 << 20,
		kvKeys: 2000, objSize: 1<<20 + 1, objRounds: 1,
	}
}

// wantRows are the rows of every report, in order.
var wantRows = []string{
	"drain-256-acking", "drain-256-noack", "drain-256-ackall", "drain-256-memory", "drain-256-self",
	"drain-4096-acking", "drain-4096-noack", "drain-4096-ackall", "drain-4096-memory", "drain-4096-self",
	"read-memory-p50", "read-memory-p99", "read-file-p50", "read-file-p99", "read-s3-p50", "read-s3-p99",
	"read-not-archived", "scan-s3", "read-index-scale", "stored-ratio-json",
	"kv-get-p50", "kv-get-p99", "obj-get", "peak-rss",
}

// TestBenchJSON runs `nts bench --quick --json` on the embedded defaults,
// made tiny, and checks the report: every row, each ratio the quotient of
// its printed figures, each verdict that of its ratio and target, n/a rows
// with a reason and no figure, and nothing left in the temporary directory.
func TestBenchJSON(t *testing.T) {
	shrinkSizes = tinySizes
	t.Cleanup(func() { shrinkSizes = nil })
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"bench", "--quick", "--json"}, &stdout, &stderr); err != nil {
		t.Fatalf("nts bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the report: %v\n%s", err, stdout.String())
	}
	if !rep.Quick || rep.Command != "nts bench --quick --json" || rep.Hardware.CPUs < 1 || rep.NATS == "" || rep.S3 == "" || rep.Seconds <= 0 {
		t.Errorf("report header %+v", rep)
	}
	for _, step := range []string{"draining it", "point reads from the S3 tier", "committing 200 synthetic blocks", "peak RSS"} {
		if !strings.Contains(stderr.String(), step) {
			t.Errorf("no progress line %q in stderr:\n%s", step, stderr.String())
		}
	}
	var ids []string
	for _, r := range rep.Rows {
		ids = append(ids, r.ID)
		t.Run(r.ID, func(t *testing.T) { checkRow(t, r) })
	}
	if strings.Join(ids, " ") != strings.Join(wantRows, " ") {
		t.Errorf("rows\n%v\nwant\n%v", ids, wantRows)
	}
	byID := map[string]row{}
	for _, r := range rep.Rows {
		byID[r.ID] = r
	}
	if r := byID["read-not-archived"]; r.OK == nil || !*r.OK {
		t.Errorf("a read of a seq never archived read a tier: %+v", r)
	}
	if r := byID["peak-rss"]; r.NTS == nil || r.NTS.Value < 1<<20 {
		t.Errorf("peak RSS %+v", r.NTS)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "nts-bench-") {
			t.Errorf("%s left behind", e.Name())
		}
	}
}

// TestBenchGivenServers runs nts bench against a NATS server and an S3
// bucket it is given, and checks it names them in the report and leaves
// neither a stream, a KV bucket nor an object behind, nor touches what was
// there before.
func TestBenchGivenServers(t *testing.T) {
	shrinkSizes = tinySizes
	t.Cleanup(func() { shrinkSizes = nil })
	srv := testenv.RunNATS(t)
	nc := testenv.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OWN", Subjects: []string{"own.>"}}); err != nil {
		t.Fatal(err)
	}
	s3 := testenv.S3Server{Endpoint: testenv.RunS3Mem(t)}
	testenv.CreateBucket(t, s3, "given")
	args := []string{"bench", "--quick", "--json", "--nats-url", srv.ClientURL(),
		"--s3-url", s3.URL("given", "bench"), "--s3-access-key", "k", "--s3-secret-key", "s"}
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("nts bench: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.NATS, "(given)") || !strings.Contains(rep.S3, "(given)") || len(rep.Rows) != len(wantRows) {
		t.Errorf("NATS %q, S3 %q, %d rows", rep.NATS, rep.S3, len(rep.Rows))
	}
	var streams []string
	for name := range js.StreamNames(ctx).Name() {
		streams = append(streams, name)
	}
	if strings.Join(streams, " ") != "OWN" {
		t.Errorf("streams after the run: %v, want OWN alone", streams)
	}
	b, err := blob.Open(ctx, s3.URL("given", ""), blob.Options{AccessKey: "k", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if objs, err := b.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Errorf("objects after the run: %d (%v)", len(objs), err)
	}
}

// checkRow checks one row of a report for consistency.
func checkRow(t *testing.T, r row) {
	t.Helper()
	if r.Figure == "" {
		t.Error("no figure name")
	}
	if r.NA != "" {
		if r.Reference != nil || r.NTS != nil || r.Ratio != nil || r.OK != nil {
			t.Errorf("n/a row (%s) has figures: %+v", r.NA, r)
		}
		t.Errorf("n/a: %s", r.NA)
		return
	}
	if r.Reference == nil || r.NTS == nil || r.Ratio == nil {
		t.Fatalf("row without its figures: %+v", r)
	}
	if r.Reference.Unit != r.NTS.Unit || r.Reference.Value <= 0 || r.NTS.Value <= 0 {
		t.Errorf("figures %+v and %+v", *r.Reference, *r.NTS)
	}
	if want := r.NTS.Value / r.Reference.Value; math.Abs(*r.Ratio-want) > 1e-9*want {
		t.Errorf("ratio %v, want %v / %v = %v", *r.Ratio, r.NTS.Value, r.Reference.Value, want)
	}
	switch {
	case r.Target == nil:
		if r.OK != nil {
			t.Errorf("verdict %v without a target", *r.OK)
		}
	case r.Target.Op == "":
		if r.OK == nil || r.Target.Text == "" {
			t.Errorf("condition target %+v, verdict %v", *r.Target, r.OK)
		}
	default:
		want := (r.Target.Op == "<=" && *r.Ratio <= r.Target.Ratio) || (r.Target.Op == ">=" && *r.Ratio >= r.Target.Ratio)
		if r.OK == nil || *r.OK != want {
			t.Errorf("ratio %v target %+v: verdict %v, want %v", *r.Ratio, *r.Target, r.OK, want)
		}
	}
}

// TestBenchFlags checks the flags nts bench refuses, before or while it
// starts its environment.
func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		is      error
	}{
		{"stray argument", []string{"now"}, `unexpected argument "now"`, nil},
		{"unknown flag", []string{"--fast"}, "flag provided but not defined", nil},
		{"access key alone", []string{"--s3-url", "s3://b1/p", "--s3-access-key", "k"}, "go together", nil},
		{"keys without URL", []string{"--s3-access-key", "k", "--s3-secret-key", "s"}, "need --s3-url", nil},
		{"s3 URL without bucket", []string{"--s3-url", "s3:///p"}, "no bucket", blob.ErrInvalidURL},
		{"dir URL for S3", []string{"--s3-url", "dir:///tmp/x"}, "want an s3:// URL", perf.ErrEnv},
		{"unreachable NATS", []string{"--nats-url", "nats://127.0.0.1:1"}, "NATS at nats://127.0.0.1:1", perf.ErrEnv},
		{"missing versitygw", []string{"--versitygw", "/nonexistent/versitygw"}, "versitygw", perf.ErrEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, append([]string{"bench"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("bench %q: %v, want an error with %q", tc.args, err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q", stdout.String())
			}
		})
	}
}

// TestRowVerdicts checks measured: the ratio of nts over its reference and
// the verdict against the target.
func TestRowVerdicts(t *testing.T) {
	us := func(v float64) figure { return figure{Value: v, Unit: unitMicros} }
	for _, tc := range []struct {
		name      string
		ref, nts  float64
		target    *target
		wantRatio float64
		wantOK    string // "yes", "no" or "" for none
	}{
		{"at most, met", 100, 120, atMost(1.5), 1.2, "yes"},
		{"at most, missed", 100, 160, atMost(1.5), 1.6, "no"},
		{"at most, on the line", 100, 150, atMost(1.5), 1.5, "yes"},
		{"at least, met", 100, 100, atLeast(1.0), 1.0, "yes"},
		{"at least, missed", 100, 79, atLeast(0.8), 0.79, "no"},
		{"no target", 100, 300, nil, 3, ""},
		{"condition", 100, 110, &target{Text: "no tier read"}, 1.1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := measured("id", "figure", us(tc.ref), us(tc.nts), tc.target)
			if r.Ratio == nil || math.Abs(*r.Ratio-tc.wantRatio) > 1e-12 {
				t.Fatalf("ratio %v, want %v", r.Ratio, tc.wantRatio)
			}
			got := ""
			if r.OK != nil {
				got = map[bool]string{true: "yes", false: "no"}[*r.OK]
			}
			if got != tc.wantOK {
				t.Errorf("verdict %q, want %q", got, tc.wantOK)
			}
		})
	}
	if r := measured("id", "figure", us(0), us(5), atMost(1)); r.Ratio != nil || r.OK != nil {
		t.Errorf("a zero reference gave ratio %v, verdict %v", r.Ratio, r.OK)
	}
}

// TestRatioText checks that a printed ratio never reads as the other side
// of its target.
func TestRatioText(t *testing.T) {
	for _, tc := range []struct {
		ratio  float64
		target *target
		want   string
	}{
		{0.81, atLeast(0.8), "0.81"},
		{0.7996, atLeast(0.8), "0.7996"},
		{0.79999, atLeast(0.8), "0.79999"},
		{0.8, atLeast(0.8), "0.80"},
		{0.8004, atLeast(0.8), "0.80"},
		{2.004, atMost(2), "2.004"},
		{1.996, atMost(2), "2.00"},
		{0.7996, nil, "0.80"},
		{0.7996, &target{Text: "no tier read"}, "0.80"},
		{0.7999999999, atLeast(0.8), "0.800000"},
	} {
		if got := ratioText(tc.ratio, tc.target); got != tc.want {
			t.Errorf("ratioText(%v, %v) = %q, want %q", tc.ratio, tc.target, got, tc.want)
		}
	}
}

// TestWriteText checks the table: its header, a cell of each kind (the
// nts cell named where its figure is not nts's), the n/a reasons and notes
// under it.
func TestWriteText(t *testing.T) {
	ok := measured("a", "drain", rate("acking", 1000, time.Second), rate("", 2000, time.Second), atLeast(1))
	ok.Note = "median of 3"
	rep := &report{
		Date: "2026-01-02", Command: "nts bench", Hardware: hardware{CPUs: 2, MemBytes: 8 << 30, OS: "linux/amd64", Go: "go1.26"},
		NATS: "embedded", S3: "versitygw", Seconds: 12,
		Rows: []row{
			ok,
			measured("b", "p50", micros("no-op", 50*time.Microsecond), micros("", 1500*time.Microsecond), atMost(1.5)),
			measured("c", "stored", bytesFig("raw", 8<<20), bytesFig("stored", 2<<20), atMost(0.4)),
			notMeasured("d", "kv.get", "no kv.get endpoint", atMost(2)),
		},
	}
	var out bytes.Buffer
	if err := rep.writeText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"nproc 2, 8 GiB memory, linux/amd64, go1.26",
		"| figure ", "| drain ", "acking: 1k msgs/s", "2k msgs/s", "2.00×", "≥ 1×", "| yes",
		"no-op: 50 µs", "| 1.5 ms ", "30.00×", "| NO",
		"raw: 8 MiB", "| stored: 2 MiB ", "0.25×",
		"| kv.get ", "| n/a ", "- kv.get: n/a: no kv.get endpoint", "- drain: median of 3",
		"the ratios",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	lines := strings.Split(out.String(), "\n")
	var width int
	for _, l := range lines {
		if strings.HasPrefix(l, "|") {
			if width == 0 {
				width = len([]rune(l))
			}
			if len([]rune(l)) != width {
				t.Errorf("table line %q is %d wide, not %d", l, len([]rune(l)), width)
			}
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nts bench"},
		{[]string{"--quick", "--json"}, "nts bench --quick --json"},
		{[]string{"--s3-secret-key", "hush", "--quick"}, "nts bench --s3-secret-key REDACTED --quick"},
		{[]string{"-s3-secret-key=hush"}, "nts bench -s3-secret-key=REDACTED"},
		{[]string{"--s3-access-key", "id"}, "nts bench --s3-access-key id"},
	} {
		if got := commandLine(tc.args); got != tc.want {
			t.Errorf("commandLine(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{200_000: "200k", 12_500: "12.5k", 1_000_000: "1M", 950: "950", 1_000: "1k", 1234: "1234"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

// BenchmarkServeRSS measures the peak RSS of an nts serve process (this
// test binary, run as its child) archiving 50k × 4 KiB of distinct
// incompressible messages through a 64 MiB memory tier, file and S3 (versitygw when
// found) tiers, then serving them back in one range scan. Its target: at
// most the memory tier's bound + 64 MiB. Run with -benchtime=1x.
func BenchmarkServeRSS(b *testing.B) {
	const n, bound = 50_000, 64 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, err := perf.StartEnv(ctx, perf.EnvOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := env.Close(); err != nil {
			b.Error(err)
		}
	})
	br := &benchRun{env: env, stderr: os.Stderr}
	if br.nc, err = nats.Connect(env.NATSURL); err != nil {
		b.Fatal(err)
	}
	defer br.nc.Close()
	if br.js, err = jetstream.New(br.nc); err != nil {
		b.Fatal(err)
	}
	stream := br.name("RSS")
	if err := perf.SeqBacklog(ctx, br.js, stream, n, rssSize); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n * 4096)
	b.ReportAllocs()
	b.ResetTimer()
	var rss int64
	for i := range b.N {
		if rss, err = br.serveRSS(ctx, stream, n, bound, fmt.Sprintf("m%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
	b.ReportMetric(float64(rss)/float64(bound+64<<20), "x-bound+64MiB")
}
