package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/syncgate/syncgate/loadtest"
)

// WritePlots saves the report's plots in dir, named after the scenario,
// in format (svg, png or pdf; default svg), and returns their paths.
func WritePlots(rep *Report, dir, format string) ([]string, error) {
	if format == "" {
		format = "svg"
	}
	if len(rep.Plots) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	titles := make([]string, 0, len(rep.Plots))
	for t := range rep.Plots {
		titles = append(titles, t)
	}
	slices.Sort(titles)
	var paths []string
	for _, title := range titles {
		var rs []*loadtest.Result
		for _, name := range rep.Plots[title] {
			if r := rep.Result(name); r != nil {
				rs = append(rs, r)
			}
		}
		path := filepath.Join(dir, rep.Scenario+"-"+slug(title)+"."+format)
		full := rep.Scenario + ": " + title
		var err error
		if strings.Contains(title, "over time") {
			err = loadtest.PlotLatencyOverTime(path, full, rs...)
		} else {
			err = loadtest.PlotPercentiles(path, full, rs...)
		}
		if err != nil {
			return paths, fmt.Errorf("plot %s: %w", title, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// Markdown renders one scenario: results, comparisons, memory, notes and
// links to its plots (paths relative to the Markdown file).
func Markdown(rep *Report, plots []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n%s.", rep.Scenario, capitalize(rep.Description))
	if rep.Command != "" {
		fmt.Fprintf(&b, " Full run: `%s`.", rep.Command)
	}
	b.WriteString("\n\n")
	if rep.Skipped != "" {
		fmt.Fprintf(&b, "Not run: %s.\n\n", rep.Skipped)
		return b.String()
	}
	b.WriteString(loadtest.MarkdownTable(rep.Results...))
	b.WriteString("\n")
	if len(rep.Comparisons) > 0 {
		b.WriteString(ComparisonTable(rep.Comparisons...))
		b.WriteString("\n")
	}
	if m := rep.Memory; m != nil {
		fmt.Fprintf(&b, "Memory per waiting request (%d waiters, node process, deltas after a GC):\n\n", m.Waiters)
		b.WriteString("| waiting on | RSS KiB | Go heap KiB | goroutine stacks KiB | node RSS with them MiB |\n|---|---:|---:|---:|---:|\n")
		fmt.Fprintf(&b, "| slow service (demo.sleep, same process) | %.1f | %.1f | %.1f | %.1f |\n",
			m.RSSPerWaiter/1024, m.HeapPerWaiter/1024, m.StackPerWaiter/1024, mib(m.With.RSS))
		fmt.Fprintf(&b, "| a destination nobody consumes (gateway alone) | %.1f | %.1f | %.1f | %.1f |\n\n",
			m.AloneRSSPerWaiter/1024, m.AloneHeapPerWaiter/1024, m.AloneStackPerWaiter/1024, mib(m.Alone.RSS))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
	}
	for _, p := range plots {
		fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)), filepath.ToSlash(p))
	}
	if len(plots) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// ComparisonTable renders comparisons, one row each, naming the floor.
func ComparisonTable(cs ...Comparison) string {
	var b strings.Builder
	b.WriteString("| figure | value | floor (same run) | floor value | ratio | aim | met |\n")
	b.WriteString("|---|---:|---|---:|---:|---|---|\n")
	for _, c := range cs {
		met := ""
		if c.Met != nil {
			met = "no"
			if *c.Met {
				met = "**yes**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s | %s %s | %.2f | %s | %s |\n",
			c.What, num(c.Value), c.Unit, c.Floor, num(c.FloorValue), c.Unit, c.Ratio, c.Aim, met)
	}
	return b.String()
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Aims collects every comparison that has an aim, across reports.
func Aims(reps []*Report) []Comparison {
	var out []Comparison
	for _, r := range reps {
		for _, c := range r.Comparisons {
			if c.Met != nil {
				c.What = r.Scenario + ": " + c.What
				out = append(out, c)
			}
		}
	}
	return out
}

// Section markers of the part of BENCHMARKS.md that `make bench` writes.
const (
	BeginMarker = "<!-- loadtest:begin (written by `make bench`; edit outside the markers) -->"
	EndMarker   = "<!-- loadtest:end -->"
)

// UpdateSection replaces the marked section of the Markdown file at path
// with section, appending the section when the markers are missing and
// creating the file when it does not exist. Nothing outside the markers
// changes.
func UpdateSection(path, title, section string) error {
	block := BeginMarker + "\n" + strings.TrimRight(section, "\n") + "\n" + EndMarker + "\n"
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.WriteFile(path, []byte("# "+title+"\n\n"+block), 0o644)
	case err != nil:
		return err
	}
	i := bytes.Index(old, []byte(BeginMarker))
	j := bytes.Index(old, []byte(EndMarker))
	var out []byte
	if i < 0 || j < i {
		out = append(bytes.TrimRight(old, "\n"), "\n\n"...)
		out = append(out, block...)
	} else {
		out = append(out, old[:i]...)
		out = append(out, block...)
		rest := old[j+len(EndMarker):]
		out = append(out, bytes.TrimPrefix(rest, []byte("\n"))...)
	}
	return os.WriteFile(path, out, 0o644)
}
