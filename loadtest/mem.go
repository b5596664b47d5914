package loadtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ReadRSS returns the resident set size of the process, in bytes, from
// /proc/self/status (VmRSS). It fails where there is no procfs.
func ReadRSS() (int64, error) { return readStatusKB("/proc/self/status", "VmRSS:") }

func readStatusKB(path, field string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field) {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, field))
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("loadtest: unexpected %s line %q", field, line)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadtest: %s: %w", field, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("loadtest: no %s in %s", field, path)
}
