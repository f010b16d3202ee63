package client

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{GetSubject(DefaultPrefix, "ORDERS", 42), "nts.get.ORDERS.42"},
		{GetSubject("archive.nts", "KV_cfg", 18446744073709551615), "archive.nts.get.KV_cfg.18446744073709551615"},
		{LastSubject(DefaultPrefix, "ORDERS"), "nts.last.ORDERS"},
		{RangeSubject(DefaultPrefix, "ORDERS"), "nts.range.ORDERS"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestIsEndOfBatch(t *testing.T) {
	eob := nats.NewMsg("inbox")
	eob.Header.Set(HeaderStatus, StatusEndOfBatch)
	eob.Header.Set(HeaderDescription, "EOB")
	withData := nats.NewMsg("inbox")
	withData.Header.Set(HeaderStatus, StatusEndOfBatch)
	withData.Data = []byte("x")
	other := nats.NewMsg("inbox")
	other.Header.Set(HeaderStatus, "404")
	for _, tc := range []struct {
		name string
		m    *nats.Msg
		want bool
	}{{"end of batch", eob, true}, {"a message with data", withData, false}, {"another status", other, false}, {"no headers", &nats.Msg{}, false}} {
		if got := IsEndOfBatch(tc.m); got != tc.want {
			t.Errorf("%s: IsEndOfBatch = %v, want %v", tc.name, got, tc.want)
		}
	}
}
