package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

// A process of a multi-process scenario: a broker, a service, a gateway,
// each on its own as in production, so that the load tool can account the
// CPU each spends per request (loadtest.Process).
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser // kept open: the floors exit when it closes
	lines chan string    // stdout and stderr, line by line
	done  chan struct{}  // closed once the process has exited
	mu    sync.Mutex
	tail  []string // the last lines, for errors
}

// startProc starts argv and returns once a line of its output satisfies
// ready, with what ready extracted from it (an address).
func startProc(name string, argv []string, ready func(line string) (string, bool)) (*proc, string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("scenario: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = w.Close()
		close(p.done)
	}()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.tail = append(p.tail, sc.Text())
			if len(p.tail) > 20 {
				p.tail = p.tail[1:]
			}
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for lines any more: keep the tail only
			}
		}
		close(p.lines)
	}()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return nil, "", fmt.Errorf("scenario: %s exited before it was ready:\n%s", name, p.tailText())
			}
			if v, ok := ready(line); ok {
				return p, v, nil
			}
		case <-deadline:
			_ = p.stop()
			return nil, "", fmt.Errorf("scenario: %s not ready within 90s:\n%s", name, p.tailText())
		}
	}
}

func (p *proc) tailText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *proc) process() loadtest.Process {
	return loadtest.Process{Name: p.name, PID: p.cmd.Process.Pid}
}

// stop sends SIGTERM, closes stdin and waits (bounded: killed after 20 s).
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return nil
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("scenario: %s did not stop within 20s; killed", p.name)
	}
}

// Readiness lines of the programs the scenarios start.
var (
	listeningRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)   // kafka-embedded
	readyAddrRE = regexp.MustCompile(`msg=ready addr=(127\.0\.0\.1:\d+)`) // syncgate
)

func matchRE(re *regexp.Regexp) func(string) (string, bool) {
	return func(line string) (string, bool) {
		if m := re.FindStringSubmatch(line); m != nil {
			return m[1], true
		}
		return "", false
	}
}

func contains(s string) func(string) (string, bool) {
	return func(line string) (string, bool) { return "", strings.Contains(line, s) }
}

// jsonField matches the floors' first line, {"addr": ...} or {"ready": true}.
func jsonField(field string) func(string) (string, bool) {
	return func(line string) (string, bool) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			return "", false
		}
		v, ok := m[field]
		if !ok {
			return "", false
		}
		return fmt.Sprint(v), true
	}
}

// programs are the binaries of the multi-process scenarios, built once per
// run from this module (the cmds a scenario names: syncgate, demo,
// kafka-embedded), and the load tool itself for the naive floors.
type programs struct {
	dir      string
	loadtest []string // argv prefix of the floors' commands
}

// buildPrograms builds the programs into a temporary directory, from the
// module that holds the working directory (go build: the scenario runs in
// a checkout, as `make bench` does).
func buildPrograms(ctx context.Context, o Options, cmds ...string) (*programs, error) {
	dir, err := os.MkdirTemp("", "syncgate-procs-")
	if err != nil {
		return nil, err
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err != nil || root == "." || root == "" {
		_ = os.RemoveAll(dir)
		return nil, errors.New("scenario: not run inside the syncgate module (go env GOMOD)")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("scenario: go build: %w\n%s", err, out)
	}
	lt := o.FloorCommand
	if len(lt) == 0 {
		exe, err := os.Executable()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		lt = []string{exe}
	}
	return &programs{dir: dir, loadtest: lt}, nil
}

func (p *programs) bin(name string) string { return filepath.Join(p.dir, name) }

func (p *programs) floor(args ...string) []string {
	return append(append([]string(nil), p.loadtest...), args...)
}

func (p *programs) close() { _ = os.RemoveAll(p.dir) }

// stack is what one side of a multi-process comparison runs.
type stack struct {
	procs []*proc
	url   string // the gateway's echo route
	// shared are processes the stack uses but did not start (a RabbitMQ
	// server): sampled, never stopped.
	shared []loadtest.Process
}

func (s *stack) processes() []loadtest.Process {
	out := make([]loadtest.Process, 0, len(s.procs)+len(s.shared))
	for _, p := range s.procs {
		out = append(out, p.process())
	}
	return append(out, s.shared...)
}

func (s *stack) stop() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- { // the gateway first, the broker last
		errs = append(errs, s.procs[i].stop())
	}
	return errors.Join(errs...)
}

// add starts a process of the stack; on error the stack is stopped.
func (s *stack) add(name string, argv []string, ready func(string) (string, bool)) (string, error) {
	p, v, err := startProc(name, argv, ready)
	if err != nil {
		return "", errors.Join(err, s.stop())
	}
	s.procs = append(s.procs, p)
	return v, nil
}
