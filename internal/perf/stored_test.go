package perf

import (
	"os"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		want    map[string]string
		wantErr string
	}{
		{"NATS/1.0\r\nNats-Msg-Id: a-1\r\nContent-Type: application/json\r\n\r\n",
			map[string]string{"Nats-Msg-Id": "a-1", "Content-Type": "application/json"}, ""},
		{"NATS/1.0\r\nK:v:w\r\n\r\n", map[string]string{"K": "v:w"}, ""},
		{"HTTP/1.1\r\nK: v\r\n\r\n", nil, "does not start with NATS/1.0"},
		{"NATS/1.0\r\nno colon\r\n\r\n", nil, "header line"},
		{"NATS/1.0\r\n: v\r\n\r\n", nil, "header line"},
		{"", nil, "does not start"},
	} {
		h, err := parseHeader([]byte(tc.raw))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseHeader(%q) = %v, %v; want an error with %q", tc.raw, h, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(h) != len(tc.want) {
			t.Fatalf("parseHeader(%q) = %v, %v", tc.raw, h, err)
		}
		for k, v := range tc.want {
			if got := h[k]; len(got) != 1 || got[0] != v {
				t.Errorf("parseHeader(%q)[%s] = %q, want %q", tc.raw, k, got, v)
			}
		}
	}
}

func TestProcessPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	before := PeakRSS()
	rss, err := ProcessPeakRSS(os.Getpid())
	after := PeakRSS()
	if err != nil || rss < 1<<20 || rss < before || rss > after {
		t.Errorf("ProcessPeakRSS(self) = %d, %v; PeakRSS() %d before, %d after", rss, err, before, after)
	}
	if _, err := ProcessPeakRSS(-1); err == nil {
		t.Error("ProcessPeakRSS(-1) succeeded")
	}
}
