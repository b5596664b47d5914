package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// Process is a process whose CPU time a run accounts per request: the
// gateway, a service, a broker. The load generator itself is always added
// (as "load generator") when a run has any.
type Process struct {
	Name string
	PID  int
}

// ProcessCPU is the CPU time (user + system, from /proc/<pid>/stat) one
// process spent during a run's measured part, and that time per completed
// request: the cost of a request that does not depend on how busy the
// machine is, unlike throughput.
type ProcessCPU struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_s"`
	// PerRequestUS is CPUSeconds per completed measured request, in µs;
	// 0 when no request completed.
	PerRequestUS float64 `json:"cpu_us_per_request"`
	// Err says why the process could not be read (it exited); its
	// figures are then 0.
	Err string `json:"error,omitempty"`
}

// LoadGenerator names this process in a run's CPU figures.
const LoadGenerator = "load generator"

// cpuTime returns the user + system CPU seconds pid has used so far.
func cpuTime(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return st.CPUTime(), nil
}

// cpuSampler takes the CPU time of a run's processes at the start and the
// end of its measured part.
type cpuSampler struct {
	procs []Process
	start []float64
	errs  []error
}

func newCPUSampler(procs []Process) *cpuSampler {
	if len(procs) == 0 {
		return nil
	}
	all := append([]Process{{Name: LoadGenerator, PID: os.Getpid()}}, procs...)
	return &cpuSampler{procs: all, start: make([]float64, len(all)), errs: make([]error, len(all))}
}

// begin records the start of the measured part.
func (s *cpuSampler) begin() {
	for i, p := range s.procs {
		s.start[i], s.errs[i] = cpuTime(p.PID)
	}
}

// end returns every process's CPU since begin, per completed request.
func (s *cpuSampler) end(requests int64) []ProcessCPU {
	out := make([]ProcessCPU, len(s.procs))
	for i, p := range s.procs {
		out[i] = ProcessCPU{Name: p.Name, PID: p.PID}
		now, err := cpuTime(p.PID)
		if err == nil {
			err = s.errs[i]
		}
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		out[i].CPUSeconds = now - s.start[i]
		if requests > 0 {
			out[i].PerRequestUS = out[i].CPUSeconds / float64(requests) * 1e6
		}
	}
	return out
}

// ParseProcess reads a -pid flag's value, name=PID.
func ParseProcess(s string) (Process, error) {
	name, pid, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(pid)
	if !ok || name == "" || err != nil || n <= 0 {
		return Process{}, fmt.Errorf("%q is not name=PID", s)
	}
	return Process{Name: name, PID: n}, nil
}

// CPUText renders a result's CPU per request as "gateway 90, service 49".
func CPUText(cpu []ProcessCPU) string {
	if len(cpu) == 0 {
		return "–"
	}
	parts := make([]string, 0, len(cpu))
	for _, c := range cpu {
		if c.Err != "" {
			parts = append(parts, c.Name+" ?")
			continue
		}
		parts = append(parts, c.Name+" "+fmtNum(c.PerRequestUS))
	}
	return strings.Join(parts, ", ")
}

// mergeCPU adds up the CPU of the results' processes by name, per the
// requests of all of them; nil when none has CPU figures.
func mergeCPU(requests int64, rs []*Result) []ProcessCPU {
	var out []ProcessCPU
	at := map[string]int{}
	for _, r := range rs {
		for _, c := range r.CPU {
			i, ok := at[c.Name]
			if !ok {
				i = len(out)
				at[c.Name] = i
				out = append(out, ProcessCPU{Name: c.Name, PID: c.PID})
			}
			out[i].CPUSeconds += c.CPUSeconds
			if c.Err != "" {
				out[i].Err = c.Err
			}
		}
	}
	for i := range out {
		if requests > 0 && out[i].Err == "" {
			out[i].PerRequestUS = out[i].CPUSeconds / float64(requests) * 1e6
		}
	}
	return out
}
