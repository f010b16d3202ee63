// Package blocktest generates realistic message streams for tests and
// benchmarks of blocks and of the packages built on them.
package blocktest

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/nats-tiered/nts/block"
)

// logStart is the timestamp of the first generated message: 2025-06-01 UTC.
const logStart = int64(1748736000) * int64(time.Second)

var (
	services = []string{"api-gateway", "checkout", "payments", "inventory", "auth", "search", "notifications", "shipping"}
	regions  = []string{"eu-west-1", "us-east-1", "ap-southeast-2"}
	methods  = []string{"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"}
	paths    = []string{
		"/api/v1/orders/%d", "/api/v1/users/%d/cart", "/api/v2/search", "/api/v1/payments/%d/capture",
		"/api/v1/products/%d", "/api/v1/sessions", "/api/v1/inventory/%d/reserve", "/healthz",
		"/api/v1/shipments/%d/track", "/api/v1/users/%d/preferences",
	}
	statuses    = []int{200, 200, 200, 200, 200, 200, 200, 201, 204, 304, 400, 401, 404, 429, 500, 503}
	requestMsgs = []string{
		"request completed", "request started", "cache miss, loading from database",
		"cache hit", "user authenticated", "order created", "payment authorized",
		"inventory reserved", "search executed", "token refreshed", "rate limit applied",
		`validation failed: missing field \"address\"`, "upstream responded",
	}
	eventMsgs = []string{
		"retrying upstream call", "slow query detected", "connection pool exhausted",
		"circuit breaker opened", "config reloaded", "background job finished",
		"message published to queue", "certificate expires soon",
	}
	upstreamErrs = []string{"context deadline exceeded", "connection reset by peer", "EOF", "503 Service Unavailable", "too many open files"}
)

// request is one in-flight request; it logs a few lines sharing its trace.
type request struct {
	service, method, path, region string
	traceID                       []byte
	user                          int
	lines                         int
}

// JSONLogs returns n messages that look like a service's structured logs
// (JSON lines of about 200 to 400 bytes: timestamp, level, service, host,
// trace and span ids, message text, HTTP method, path, status and latency,
// user id), with sequences 1..n, subjects "logs.<service>.<level>",
// timestamps about 1 ms apart from 2025-06-01 UTC, and a NATS header on
// about one message in ten. The same seed gives the same messages.
func JSONLogs(seed int64, n int) []block.Msg {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	inflight := make([]*request, 12)
	msgs := make([]block.Msg, n)
	t := logStart + rng.Int64N(int64(time.Hour))
	for i := range msgs {
		t += 500*int64(time.Microsecond) + rng.Int64N(int64(time.Millisecond))
		slot := rng.IntN(len(inflight))
		req := inflight[slot]
		if req == nil || req.lines == 0 {
			req = newRequest(rng)
			inflight[slot] = req
		}
		req.lines--
		level := pickLevel(rng)
		data := appendLine(nil, rng, req, level, t)
		m := block.Msg{
			Seq:     uint64(i + 1),
			Subject: "logs." + req.service + "." + level,
			Data:    data,
			Time:    t,
		}
		if rng.IntN(10) == 0 {
			h := append([]byte("NATS/1.0\r\nNats-Msg-Id: "), req.traceID...)
			h = append(h, '-')
			h = strconv.AppendInt(h, int64(i+1), 10)
			h = append(h, "\r\nContent-Type: application/json\r\n\r\n"...)
			m.Header = h
		}
		msgs[i] = m
	}
	return msgs
}

func newRequest(rng *rand.Rand) *request {
	r := &request{
		service: services[rng.IntN(len(services))],
		method:  methods[rng.IntN(len(methods))],
		region:  regions[rng.IntN(len(regions))],
		traceID: appendHex(nil, rng, 16),
		user:    10000 + rng.IntN(90000),
		lines:   1 + rng.IntN(6),
	}
	p := paths[rng.IntN(len(paths))]
	if j := strings.Index(p, "%d"); j >= 0 {
		p = p[:j] + strconv.Itoa(1000+rng.IntN(900000)) + p[j+2:]
	}
	r.path = p
	return r
}

func pickLevel(rng *rand.Rand) string {
	switch x := rng.IntN(100); {
	case x < 70:
		return "info"
	case x < 85:
		return "debug"
	case x < 95:
		return "warn"
	default:
		return "error"
	}
}

// appendLine appends one JSON log line for req.
func appendLine(b []byte, rng *rand.Rand, req *request, level string, t int64) []byte {
	b = append(b, `{"ts":"`...)
	b = time.Unix(0, t).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","level":"`...)
	b = append(b, level...)
	b = append(b, `","service":"`...)
	b = append(b, req.service...)
	b = append(b, `","host":"`...)
	b = append(b, req.service...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(rng.IntN(4)), 10)
	b = append(b, `","region":"`...)
	b = append(b, req.region...)
	b = append(b, `","trace_id":"`...)
	b = append(b, req.traceID...)
	b = append(b, `","span_id":"`...)
	b = appendHex(b, rng, 8)
	b = append(b, `","msg":"`...)
	if level == "warn" || (level == "error" && rng.IntN(2) == 0) {
		b = append(b, eventMsgs[rng.IntN(len(eventMsgs))]...)
		b = append(b, `","attempt":`...)
		b = strconv.AppendInt(b, int64(1+rng.IntN(3)), 10)
		b = append(b, `,"upstream":"`...)
		b = append(b, services[rng.IntN(len(services))]...)
		b = append(b, `:8443","error":"`...)
		b = append(b, upstreamErrs[rng.IntN(len(upstreamErrs))]...)
		b = append(b, '"')
	} else {
		b = append(b, requestMsgs[rng.IntN(len(requestMsgs))]...)
		b = append(b, `","http":{"method":"`...)
		b = append(b, req.method...)
		b = append(b, `","path":"`...)
		b = append(b, req.path...)
		b = append(b, `","status":`...)
		b = strconv.AppendInt(b, int64(statuses[rng.IntN(len(statuses))]), 10)
		b = append(b, `,"latency_ms":`...)
		lat := math.Exp(rng.NormFloat64()*0.9 + 2.5) // log-normal, median ~12 ms
		b = strconv.AppendFloat(b, lat, 'f', 3, 64)
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, int64(rng.IntN(20000)), 10)
		b = append(b, `},"user_id":"u_`...)
		b = strconv.AppendInt(b, int64(req.user), 10)
		b = append(b, '"')
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendHex appends n random bytes as 2n hex digits.
func appendHex(b []byte, rng *rand.Rand, n int) []byte {
	for range n {
		x := rng.Uint32()
		b = append(b, hexDigits[x>>4&0xf], hexDigits[x&0xf])
	}
	return b
}
