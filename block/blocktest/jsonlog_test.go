package blocktest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONLogs(t *testing.T) {
	const n = 5000
	msgs := JSONLogs(42, n)
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	again := JSONLogs(42, n)
	other := JSONLogs(43, n)
	headers, total, differ := 0, 0, 0
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d: seq %d", i, m.Seq)
		}
		if i > 0 && m.Time <= msgs[i-1].Time {
			t.Fatalf("message %d: time %d not after %d", i, m.Time, msgs[i-1].Time)
		}
		if i > 0 && (m.Time-msgs[i-1].Time < 500_000 || m.Time-msgs[i-1].Time > 1_500_000) {
			t.Fatalf("message %d: %d ns after the previous, want about 1 ms", i, m.Time-msgs[i-1].Time)
		}
		parts := strings.Split(m.Subject, ".")
		if len(parts) != 3 || parts[0] != "logs" {
			t.Fatalf("message %d: subject %q, want logs.<service>.<level>", i, m.Subject)
		}
		var line struct {
			Level   string `json:"level"`
			Service string `json:"service"`
			TraceID string `json:"trace_id"`
			Msg     string `json:"msg"`
		}
		if err := json.Unmarshal(m.Data, &line); err != nil {
			t.Fatalf("message %d is not JSON: %v\n%s", i, err, m.Data)
		}
		if line.Service != parts[1] || line.Level != parts[2] || len(line.TraceID) != 32 || line.Msg == "" {
			t.Fatalf("message %d: fields %+v do not match subject %q", i, line, m.Subject)
		}
		if len(m.Data) < 200 || len(m.Data) > 400 {
			t.Fatalf("message %d: %d bytes, want 200 to 400", i, len(m.Data))
		}
		if m.Header != nil {
			headers++
			if !bytes.HasPrefix(m.Header, []byte("NATS/1.0\r\n")) || !bytes.HasSuffix(m.Header, []byte("\r\n\r\n")) {
				t.Fatalf("message %d: header %q is not a NATS header", i, m.Header)
			}
		}
		total += len(m.Data)
		a := again[i]
		if a.Seq != m.Seq || a.Subject != m.Subject || a.Time != m.Time || !bytes.Equal(a.Data, m.Data) || !bytes.Equal(a.Header, m.Header) {
			t.Fatalf("message %d differs between runs with the same seed", i)
		}
		if !bytes.Equal(other[i].Data, m.Data) {
			differ++
		}
	}
	if headers < n/20 || headers > n/5 {
		t.Fatalf("%d of %d messages have headers, want about one in ten", headers, n)
	}
	if differ < n*9/10 {
		t.Fatalf("only %d of %d messages differ between seeds", differ, n)
	}
	t.Logf("average %d bytes, %d headers", total/n, headers)
}
