package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// report is what nts bench prints: the table's rows and how they were
// measured. Its JSON form is the --json output.
type report struct {
	Date     string   `json:"date"`
	Command  string   `json:"command"`
	Version  string   `json:"version"`
	Hardware hardware `json:"hardware"`
	// NATS and S3 describe the servers measured against.
	NATS string `json:"nats"`
	S3   string `json:"s3"`
	// Quick reports --quick: smaller backlogs, fewer samples.
	Quick   bool    `json:"quick"`
	Seconds float64 `json:"seconds"`
	Rows    []row   `json:"rows"`
}

// row is one figure of the table: nts against its reference measured in
// the same run, the ratio of the two, and the target the ratio is held to.
// A figure that could not be measured has NA set to the reason, and no
// reference, nts figure, ratio or verdict.
type row struct {
	ID     string `json:"id"`
	Figure string `json:"figure"`
	// Reference and NTS are the two figures; Ratio is NTS.Value over
	// Reference.Value.
	Reference *figure  `json:"reference,omitempty"`
	NTS       *figure  `json:"nts,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
	Target    *target  `json:"target,omitempty"`
	// OK is the verdict against the target; absent without a target or a
	// figure.
	OK   *bool  `json:"ok,omitempty"`
	NA   string `json:"na,omitempty"`
	Note string `json:"note,omitempty"`
}

// figure is one measured value.
type figure struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
	// Unit is one of unitRate, unitMicros, unitBytes, unitMBps.
	Unit string `json:"unit"`
}

// Units of figures.
const (
	unitRate   = "msgs/s"
	unitMicros = "µs"
	unitBytes  = "bytes"
	unitMBps   = "MB/s"
)

// target is what a row's ratio is held to: Op ("<=" or ">=") Ratio, or,
// with no Op, the condition Text names, judged by the measurement itself.
type target struct {
	Op    string  `json:"op,omitempty"`
	Ratio float64 `json:"ratio,omitempty"`
	Text  string  `json:"text"`
}

// met reports whether ratio meets t, which has an Op.
func (t *target) met(ratio float64) bool {
	return (t.Op == "<=" && ratio <= t.Ratio) || (t.Op == ">=" && ratio >= t.Ratio)
}

// hardware describes the machine measured on.
type hardware struct {
	CPUs     int    `json:"cpus"`
	CPU      string `json:"cpu,omitempty"`
	MemBytes int64  `json:"mem_bytes,omitempty"`
	OS       string `json:"os"`
	Go       string `json:"go"`
}

// String is the README's hardware line.
func (h hardware) String() string {
	s := fmt.Sprintf("nproc %d", h.CPUs)
	if h.CPU != "" {
		s += " (" + h.CPU + ")"
	}
	if h.MemBytes > 0 {
		s += fmt.Sprintf(", %.0f GiB memory", float64(h.MemBytes)/(1<<30))
	}
	return s + ", " + h.OS + ", " + h.Go
}

// measured makes a row of two figures, computing the ratio and the verdict.
func measured(id, name string, ref, nts figure, t *target) row {
	if nts.What == "" {
		nts.What = "nts"
	}
	r := row{ID: id, Figure: name, Reference: &ref, NTS: &nts, Target: t}
	if ref.Value > 0 {
		ratio := nts.Value / ref.Value
		r.Ratio = &ratio
		if t != nil && t.Op != "" {
			ok := t.met(ratio)
			r.OK = &ok
		}
	}
	return r
}

// notMeasured makes the row of a figure that could not be measured.
func notMeasured(id, name, reason string, t *target) row {
	return row{ID: id, Figure: name, Target: t, NA: reason}
}

func atLeast(ratio float64) *target {
	return &target{Op: ">=", Ratio: ratio, Text: fmt.Sprintf("≥ %.2g×", ratio)}
}

func atMost(ratio float64) *target {
	return &target{Op: "<=", Ratio: ratio, Text: fmt.Sprintf("≤ %.2g×", ratio)}
}

func rate(what string, n int, d time.Duration) figure {
	return figure{What: what, Value: float64(n) / d.Seconds(), Unit: unitRate}
}

func mbps(what string, n int, d time.Duration) figure {
	return figure{What: what, Value: float64(n) / 1e6 / d.Seconds(), Unit: unitMBps}
}

func micros(what string, d time.Duration) figure {
	return figure{What: what, Value: float64(d) / float64(time.Microsecond), Unit: unitMicros}
}

func bytesFig(what string, n int64) figure {
	return figure{What: what, Value: float64(n), Unit: unitBytes}
}

// String formats a figure's value for the table.
func (f figure) String() string {
	switch f.Unit {
	case unitRate:
		return siFormat(f.Value) + " msgs/s"
	case unitMicros:
		if f.Value >= 1000 {
			return fmt.Sprintf("%.3g ms", f.Value/1000)
		}
		return fmt.Sprintf("%.3g µs", f.Value)
	case unitBytes:
		return binaryFormat(f.Value)
	case unitMBps:
		return fmt.Sprintf("%.3g MB/s", f.Value)
	}
	return fmt.Sprintf("%g %s", f.Value, f.Unit)
}

// siFormat writes v with three significant digits and a k or M suffix.
func siFormat(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// binaryFormat writes a byte count with a binary unit.
func binaryFormat(v float64) string {
	for _, u := range []struct {
		name string
		mult float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.mult {
			return fmt.Sprintf("%.3g %s", v/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%.0f B", v)
}

// cells returns the row's table cells: figure, reference, nts, ratio,
// target, ok. The nts cell names its figure where it is not nts's.
func (r row) cells() []string {
	c := []string{r.Figure, "—", "—", "—", "—", "—"}
	if r.Target != nil {
		c[4] = r.Target.Text
	}
	if r.NA != "" {
		c[2], c[5] = "n/a", "n/a"
		return c
	}
	if r.Reference != nil {
		c[1] = r.Reference.What + ": " + r.Reference.String()
	}
	if r.NTS != nil {
		c[2] = r.NTS.String()
		if r.NTS.What != "nts" { // a reference set against another
			c[2] = r.NTS.What + ": " + c[2]
		}
	}
	if r.Ratio != nil {
		c[3] = ratioText(*r.Ratio, r.Target) + "×"
	}
	if r.OK != nil {
		c[5] = "yes"
		if !*r.OK {
			c[5] = "NO"
		}
	}
	return c
}

// ratioText formats a ratio to two decimals, or to as many more (up to six)
// as it takes for the printed figure to stand on the same side of t as the
// ratio does: 0.7996 against "≥ 0.8×" is printed 0.7996, not 0.80 beside a
// NO.
func ratioText(ratio float64, t *target) string {
	s := strconv.FormatFloat(ratio, 'f', 2, 64)
	if t == nil || t.Op == "" {
		return s
	}
	for prec := 3; prec <= 6; prec++ {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || t.met(v) == t.met(ratio) {
			break
		}
		s = strconv.FormatFloat(ratio, 'f', prec, 64)
	}
	return s
}

// writeText prints the report as a Markdown table, padded to line up in a
// terminal, followed by the notes and the reasons of n/a rows.
func (rep *report) writeText(w io.Writer) error {
	head := []string{"figure", "reference", "nts", "ratio", "target", "ok"}
	rows := [][]string{head}
	for _, r := range rep.Rows {
		rows = append(rows, r.cells())
	}
	width := make([]int, len(head))
	for _, cs := range rows {
		for i, c := range cs {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nts bench, %s: %s\n", rep.Date, rep.Hardware)
	fmt.Fprintf(&b, "command: %s (%.0f s)\nNATS: %s\nS3: %s\n\n", rep.Command, rep.Seconds, rep.NATS, rep.S3)
	line := func(cs []string) {
		b.WriteString("|")
		for i, c := range cs {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		b.WriteString("\n")
	}
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, cs := range rows[1:] {
		line(cs)
	}
	b.WriteString("\n")
	for _, r := range rep.Rows {
		switch {
		case r.NA != "":
			fmt.Fprintf(&b, "- %s: n/a: %s\n", r.Figure, r.NA)
		case r.Note != "":
			fmt.Fprintf(&b, "- %s: %s\n", r.Figure, r.Note)
		}
	}
	b.WriteString("\nAbsolute figures vary by machine and by what else it runs; the ratios, each\n" +
		"taken against its reference in the same run, are what to compare.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJSON prints the report as indented JSON.
func (rep *report) writeJSON(w io.Writer) error {
	for _, r := range rep.Rows {
		if r.Ratio != nil && (math.IsNaN(*r.Ratio) || math.IsInf(*r.Ratio, 0)) {
			return fmt.Errorf("row %s: ratio %v", r.ID, *r.Ratio)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}
