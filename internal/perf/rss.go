package perf

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcessPeakRSS returns the peak resident set size (VmHWM) of process pid
// in bytes, as /proc tells it; an error where there is no /proc.
func ProcessPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("perf: peak RSS of process %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: /proc/%d/status has no VmHWM line in kB", ErrCheck, pid)
}
