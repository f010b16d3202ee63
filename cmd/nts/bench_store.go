package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nats-tiered/nts/client"
	"github.com/nats-tiered/nts/internal/perf"
)

// kvObjRows reports the KV and object figures, which need endpoints this
// build of nts may not serve: n/a with the reason.
func (b *benchRun) kvObjRows(ctx context.Context, s *readsService) []row {
	var rows []row
	for _, tc := range []struct {
		spec rowSpec
		subj string
		what string
	}{
		{kvSpec, client.KVGetSubject(s.cfg.Service.Prefix, "BENCH", "k"), "kv.get"},
		{objSpec, client.ObjGetSubject(s.cfg.Service.Prefix, "BENCH"), "obj.get"},
	} {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := b.nc.RequestWithContext(rctx, tc.subj, nil)
		cancel()
		var reason string
		switch {
		case err == nil:
			reason = fmt.Sprintf("the %s endpoint answers, but nts bench does not measure it yet (its setup of the bucket is not built)", tc.what)
		case errors.Is(err, nats.ErrNoResponders):
			reason = fmt.Sprintf("this build of nts serves no %s endpoint (no responders on %s)", tc.what, tc.subj)
		default:
			reason = fmt.Sprintf("asking %s whether the %s endpoint exists: %v", tc.subj, tc.what, err)
		}
		rows = append(rows, notMeasured(tc.spec.id, tc.spec.name, reason, tc.spec.target))
	}
	return rows
}

// storedRow reports the stored bytes of the archived JSON logs over the raw
// bytes they hold.
func (b *benchRun) storedRow(ctx context.Context, s *readsService) []row {
	stored, raw, err := perf.Stored(ctx, b.nc, s.logs)
	if err != nil {
		return b.failedRows(err, logsSpec)
	}
	r := measured(logsSpec.id, logsSpec.name, bytesFig("raw", raw), bytesFig("stored", stored), logsSpec.target)
	r.Note = fmt.Sprintf("%s lines of blocktest.JSONLogs archived by nts with S2 (8 MiB blocks of 128 KiB frames); raw = the blocks' uncompressed frames", count(b.sz.logs))
	if st, err := b.js.Stream(ctx, s.logs.Stream); err == nil {
		r.Note += fmt.Sprintf("; JetStream holds them in %s", binaryFormat(float64(st.CachedInfo().State.Bytes)))
	}
	return []row{r}
}
