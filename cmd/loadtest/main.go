// Command loadtest drives an HTTP endpoint open loop (constant rate,
// latency from the intended send time) or closed loop (N workers), and runs
// syncgate's standard scenarios.
//
//	loadtest run -url http://127.0.0.1:8080/demo/echo -body '{}' -rate 2000 -duration 60s
//	loadtest scenario memory
//	loadtest bench -short          # every scenario, writes BENCHMARKS.md and docs/bench/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/loadtest"
	"github.com/syncgate/syncgate/loadtest/scenario"
)

const usage = `usage:
  loadtest run [flags]              load one URL (loadtest run -h)
  loadtest scenario NAME [flags]    run one scenario: %s (loadtest scenario -h)
  loadtest bench [flags]            run every scenario, write BENCHMARKS.md and plots (loadtest bench -h)
  loadtest help                     this text (also -h, --help)

The naive floors, as processes a scenario starts (each prints a JSON line once serving,
and runs until SIGTERM or until its stdin closes; loadtest naive-gateway -h):
  loadtest naive-gateway -broker kafka|rabbitmq [flags]   net/http + kafka-go or amqp091-go, a map of channels
  loadtest naive-echo -broker kafka|rabbitmq [flags]      the echo service answering it (and syncgate's gateway)
  loadtest echo-server [flags]                            a plain net/http echo, the memory path's floor
`

// errUsage is returned for a command line without a command; the usage
// has been printed.
var errUsage = errors.New("usage")

func main() {
	// The Redis Cluster cluster-procs starts refuses dials until its nodes
	// listen; go-redis would print each to stderr.
	redisstate.SetLibraryLogger(slog.Default())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps run's error to the process status: 0 for success and for
// help asked for (-h prints the usage, as asked), 2 for a missing command,
// 1 for anything else, which it prints.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "loadtest:", err)
	return 1
}

// isHelp tells whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// parseFlags parses args into fs; the usage -h prints goes to stdout (it
// was asked for), an error's to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) && a != "help" {
			fs.SetOutput(stdout)
		}
	}
	return fs.Parse(args)
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenario.All() {
		names = append(names, s.Name)
	}
	return names
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, strings.Join(scenarioNames(), ", "))
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintf(stdout, usage, strings.Join(scenarioNames(), ", "))
		return nil
	}
	switch args[0] {
	case "run":
		return runURL(ctx, args[1:], stdout, stderr)
	case "scenario":
		return runScenario(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "serve-node": // the many-waiters node, driven by its parent
		n, err := strconv.Atoi(os.Getenv(scenario.WaitersEnv))
		if err != nil {
			return fmt.Errorf("serve-node: %s: %w", scenario.WaitersEnv, err)
		}
		return scenario.ServeNode(ctx, os.Stdin, stdout, n)
	case "naive-gateway", "naive-echo", "echo-server": // the naive floors, started by scenarios
		return runFloor(ctx, args[0], args[1:], os.Stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, usage, strings.Join(scenarioNames(), ", "))
	return fmt.Errorf("unknown command %q", args[0])
}

type headers http.Header

func (h headers) String() string { return fmt.Sprint(http.Header(h)) }
func (h headers) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok {
		return fmt.Errorf("%q is not Name: value", v)
	}
	http.Header(h).Add(strings.TrimSpace(k), strings.TrimSpace(val))
	return nil
}

func runURL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loadtest run -url URL [flags]")
		fs.PrintDefaults()
	}
	var (
		cfg      loadtest.Config
		target   loadtest.Target
		hdr      = headers{}
		body     = fs.String("body", "", "request body (@FILE reads a file)")
		conns    = fs.Int("connections", 0, "max connections (default: workers in closed loop, 1024 open loop)")
		poll     = fs.Duration("poll", 0, "when > 0, follow 202 Location every POLL until done (time to result)")
		jsonOut  = fs.String("json", "", "write the result as JSON to this file (- for stdout)")
		mdOut    = fs.String("md", "", "write the Markdown table to this file (- for stdout)")
		plotDir  = fs.String("plot-dir", "", "write the plots of latency over time and of the percentiles here")
		plotFmt  = fs.String("plot-format", "svg", "plot image format: "+strings.Join(loadtest.PlotFormats, ", "))
		plotName = fs.String("plot-name", "", "plot file name prefix: PREFIX-latency.FORMAT, PREFIX-percentiles.FORMAT (default: latency.FORMAT, percentiles.FORMAT)")
		quiet    = fs.Bool("quiet", false, "no progress line")
	)
	fs.StringVar(&target.URL, "url", "", "target URL (required)")
	fs.StringVar(&target.Method, "method", "", "HTTP method (default POST with a body, else GET)")
	fs.Var(hdr, "H", "request header 'Name: value' (repeatable)")
	fs.StringVar(&cfg.Name, "name", "", "name of the run in reports (default: the URL)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second (0: closed loop)")
	fs.IntVar(&cfg.Workers, "workers", 0, "closed loop: workers (default 64); open loop: max in flight (default 10000)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many measured requests (0: duration only)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up before measuring (not recorded)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "timeout of one request (with its polls)")
	fs.Func("pid", "NAME=PID: a process whose CPU time per request to report, e.g. gateway=1234 (repeatable; the load generator is added)", func(v string) error {
		p, err := loadtest.ParseProcess(v)
		if err == nil {
			cfg.Processes = append(cfg.Processes, p)
		}
		return err
	})
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if target.URL == "" {
		fs.Usage()
		return errors.New("run: -url is required")
	}
	// Checked before the run, not after minutes of load.
	if !slices.Contains(loadtest.PlotFormats, *plotFmt) {
		return fmt.Errorf("run: -plot-format %q: want one of %s", *plotFmt, strings.Join(loadtest.PlotFormats, ", "))
	}
	if strings.ContainsRune(*plotName, filepath.Separator) {
		return fmt.Errorf("run: -plot-name %q: a file name prefix, without a directory (that is -plot-dir)", *plotName)
	}
	if *body != "" {
		target.Body = []byte(*body)
		if strings.HasPrefix(*body, "@") {
			b, err := os.ReadFile((*body)[1:])
			if err != nil {
				return err
			}
			target.Body = b
		}
	}
	target.Header = http.Header(hdr)
	if cfg.Name == "" {
		cfg.Name = target.URL
	}
	if *conns == 0 {
		*conns = 1024
		if cfg.Rate == 0 {
			*conns = max(cfg.Workers, 64)
		}
	}
	target.Client = loadtest.NewClient(*conns)
	target.Samples = new(loadtest.Samples)
	if !*quiet {
		cfg.Progress = stderr
	}
	op := target.Op()
	if *poll > 0 {
		op = target.PollOp(*poll, 0, nil)
	}
	res, err := loadtest.Run(ctx, cfg, op)
	if err != nil {
		return err
	}
	if *mdOut != "-" {
		fmt.Fprint(stdout, loadtest.MarkdownTable(res))
	}
	for code, body := range target.Samples.Get() {
		fmt.Fprintf(stderr, "first %d response: %s\n", code, strings.Join(strings.Fields(body), " "))
	}
	if err := writeOut(*jsonOut, stdout, func(w io.Writer) error { return loadtest.WriteJSON(w, res) }); err != nil {
		return err
	}
	if err := writeOut(*mdOut, stdout, func(w io.Writer) error {
		_, err := io.WriteString(w, loadtest.MarkdownTable(res))
		return err
	}); err != nil {
		return err
	}
	if *plotDir != "" {
		if err := os.MkdirAll(*plotDir, 0o755); err != nil {
			return err
		}
		for _, pl := range []struct {
			name, title string
			draw        func(path, title string, rs ...*loadtest.Result) error
		}{
			{"latency", "latency over time", loadtest.PlotLatencyOverTime},
			{"percentiles", "latency percentiles", loadtest.PlotPercentiles},
		} {
			path := filepath.Join(*plotDir, plotFile(*plotName, pl.name, *plotFmt))
			if err := pl.draw(path, pl.title, res); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "wrote %s\n", path)
		}
	}
	return nil
}

// plotFile names one plot of run: [PREFIX-]NAME.FORMAT.
func plotFile(prefix, name, format string) string {
	if prefix != "" {
		name = prefix + "-" + name
	}
	return name + "." + format
}

func writeOut(path string, stdout io.Writer, write func(io.Writer) error) error {
	switch path {
	case "":
		return nil
	case "-":
		return write(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type scenarioFlags struct {
	short   bool
	plotDir string
	format  string
	jsonOut string
	waiters int
	nodes   int
	quiet   bool
}

func (sf *scenarioFlags) register(fs *flag.FlagSet, plotDir string) {
	fs.BoolVar(&sf.short, "short", false, "the short version (what make bench runs)")
	fs.StringVar(&sf.plotDir, "plot-dir", plotDir, "write the plots here, named SCENARIO-TITLE.FORMAT (empty: none)")
	fs.StringVar(&sf.format, "plot-format", "svg", "plot image format: "+strings.Join(loadtest.PlotFormats, ", "))
	fs.StringVar(&sf.jsonOut, "json", "", "write the reports as JSON to this file (- for stdout)")
	fs.IntVar(&sf.waiters, "waiters", 10000, "many-waiters: requests held open")
	fs.IntVar(&sf.nodes, "nodes", scenario.ClusterNodes, "cluster-procs: gateway nodes")
	fs.BoolVar(&sf.quiet, "quiet", false, "no progress lines")
}

// check rejects a bad flag before minutes of load, not after.
func (sf *scenarioFlags) check() error {
	if !slices.Contains(loadtest.PlotFormats, sf.format) {
		return fmt.Errorf("-plot-format %q: want one of %s", sf.format, strings.Join(loadtest.PlotFormats, ", "))
	}
	return nil
}

func (sf *scenarioFlags) options(stderr io.Writer) scenario.Options {
	o := scenario.Options{Short: sf.short, Waiters: sf.waiters, Nodes: sf.nodes}
	if !sf.quiet {
		o.Progress = stderr
	}
	return o
}

func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fs := flag.NewFlagSet("scenario NAME", flag.ContinueOnError)
		var sf scenarioFlags
		sf.register(fs, "")
		fmt.Fprintf(stdout, "usage: loadtest scenario NAME [flags], NAME one of %s\n", strings.Join(scenarioNames(), ", "))
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("scenario: name one of %s", strings.Join(scenarioNames(), ", "))
	}
	name := args[0]
	fs := flag.NewFlagSet("scenario "+name, flag.ContinueOnError)
	var sf scenarioFlags
	sf.register(fs, "")
	if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	rep, err := scenario.Run(ctx, name, sf.options(stderr))
	if err != nil {
		return err
	}
	var plots []string
	if sf.plotDir != "" {
		if plots, err = scenario.WritePlots(rep, sf.plotDir, sf.format); err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, scenario.Markdown(rep, plots))
	return writeOut(sf.jsonOut, stdout, func(w io.Writer) error { return writeJSON(w, rep) })
}

func writeJSON(w io.Writer, v any) error {
	enc := jsonEncoder(w)
	return enc.Encode(v)
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: loadtest bench [flags]")
		fs.PrintDefaults()
	}
	var sf scenarioFlags
	sf.register(fs, "docs/bench")
	out := fs.String("out", "BENCHMARKS.md", "Markdown file whose marked section is rewritten")
	only := fs.String("only", "", "comma-separated scenarios (default: all)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if sf.jsonOut == "" && sf.plotDir != "" {
		sf.jsonOut = filepath.Join(sf.plotDir, "results.json")
	}
	names := scenarioNames()
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	started := time.Now().UTC()
	var reps []*scenario.Report
	var sections []string
	for _, name := range names {
		fmt.Fprintf(stderr, "== scenario %s\n", name)
		t0 := time.Now()
		rep, err := scenario.Run(ctx, name, sf.options(stderr))
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			rep = &scenario.Report{Scenario: name, Skipped: "failed: " + err.Error()}
			fmt.Fprintf(stderr, "scenario %s failed: %v\n", name, err)
		}
		rep.Command = "go run ./cmd/loadtest scenario " + name + " -plot-dir docs/bench"
		var plots []string
		if sf.plotDir != "" && rep.Skipped == "" {
			if plots, err = scenario.WritePlots(rep, sf.plotDir, sf.format); err != nil {
				return err
			}
		}
		rel := make([]string, len(plots))
		for i, p := range plots {
			rel[i] = relTo(*out, p)
		}
		reps = append(reps, rep)
		sections = append(sections, scenario.Markdown(rep, rel))
		fmt.Fprintf(stderr, "== scenario %s done in %s\n", name, time.Since(t0).Round(time.Second))
	}
	var b strings.Builder
	kind := "full"
	cmd := "go run ./cmd/loadtest bench"
	if sf.short {
		kind, cmd = "short", "make bench"
	}
	fmt.Fprintf(&b, "## Load test results (%s run)\n\n", kind)
	fmt.Fprintf(&b, "Written by `%s` (`go run ./cmd/loadtest bench%s`), started %s, took %s; %s %s/%s, %d CPUs. ",
		cmd, map[bool]string{true: " -short", false: ""}[sf.short], started.Format("2006-01-02 15:04 UTC"),
		time.Since(started).Round(time.Second), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	b.WriteString("The load generator and the servers share this machine (and its 2 cores with whatever else runs on it), " +
		"so absolute figures are noisy and low; the comparisons are ratios to a floor measured in the same run, " +
		"phases interleaved where it matters, and the round-by-round ratios show how far one run moves. " +
		"In closed loop the generator's own CPU comes out of the same 2 cores, so a ratio of throughputs is about CPU per request of the whole loop. " +
		"Latencies are from the intended send time (open loop) and include queueing.\n\n")
	b.WriteString("### Aims\n\n")
	if aims := scenario.Aims(reps); len(aims) > 0 {
		b.WriteString(scenario.ComparisonTable(aims...))
	} else {
		b.WriteString("No scenario with an aim ran.\n")
	}
	b.WriteString("\n")
	for _, rep := range reps {
		if aim, ok := backendAims[rep.Scenario]; ok && rep.Skipped != "" {
			fmt.Fprintf(&b, "- %s aims (%s): not measured in this run: %s.\n", rep.Scenario, aim, rep.Skipped)
		}
	}
	b.WriteString("- Node memory: the RSS aims count the whole node process, which also runs the demo service; " +
		"the \"gateway alone\" row holds the requests on a destination nobody consumes, so it is the gateway's own cost.\n\n")
	for _, s := range sections {
		b.WriteString(s)
	}
	if err := scenario.UpdateSection(*out, "syncgate benchmarks", b.String()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	if sf.jsonOut != "" && sf.jsonOut != "-" {
		// Scenarios without plots (the multi-process ones) make no plot
		// directory, where results.json goes by default.
		if err := os.MkdirAll(filepath.Dir(sf.jsonOut), 0o755); err != nil {
			return err
		}
	}
	return writeOut(sf.jsonOut, stdout, func(w io.Writer) error { return writeJSON(w, reps) })
}

// backendAims are the backends' aims from their issues; the raw-client
// floors they name are Go benchmarks next to each backend.
var backendAims = map[string]string{
	"kafka": "issue 6: p50 < 2 ms at concurrency 1; gateway throughput ≥ 50 % of a raw kafka-go request/reply loop, " +
		"whose floor is `go test -run '^$' -bench RequestReply ./brokers/kafka/`",
	"rabbitmq": "issue 7: p50 < 1 ms at concurrency 1; gateway throughput ≥ 60 % of a raw amqp091-go RPC loop, " +
		"measured with the durable defaults and with the latency profile (classic queues, transient messages); " +
		"the Client's own loops are `go test -run '^$' -bench RPC ./brokers/rabbitmq/`",
	"nats": "issue 22: gateway throughput ≥ 0.80 of the ceiling beside a raw nats.go request/reply loop; " +
		"p50 at concurrency 1 within 0.15 ms of gateway/memory's; the Client's own loop is " +
		"`go test -run '^$' -bench RoundTrip ./brokers/nats/`",
}

// relTo returns target relative to the directory of file.
func relTo(file, target string) string {
	rel, err := filepath.Rel(filepath.Dir(file), target)
	if err != nil {
		return target
	}
	return rel
}
