package loadtest

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot sizes.
const (
	plotWidth  = 8 * vg.Inch
	plotHeight = 4 * vg.Inch
)

// PlotLatencyOverTime draws p99 (solid) and p50 (dashed) per interval of
// each result and saves it to path; the extension (.svg, .png, .pdf)
// chooses the format. The legend, one entry per result, is under the axes.
func PlotLatencyOverTime(path, title string, rs ...*Result) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds after warm-up"
	p.Y.Label.Text = "latency (ms): p99 solid, p50 dashed"
	p.Add(plotter.NewGrid())
	var items []legendItem
	top := 0.0
	for i, r := range rs {
		if len(r.Series) == 0 {
			continue
		}
		p50 := make(plotter.XYs, 0, len(r.Series))
		p99 := make(plotter.XYs, 0, len(r.Series))
		for _, pt := range r.Series {
			if pt.Count == 0 {
				continue
			}
			p50 = append(p50, plotter.XY{X: pt.T, Y: pt.P50})
			p99 = append(p99, plotter.XY{X: pt.T, Y: pt.P99})
			top = math.Max(top, pt.P99)
		}
		if len(p99) == 0 {
			continue
		}
		var solid *plotter.Line
		for _, s := range []struct {
			xys    plotter.XYs
			dashed bool
		}{{p99, false}, {p50, true}} {
			l, err := plotter.NewLine(s.xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", r.Name, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.2)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			} else {
				solid = l
			}
			p.Add(l)
		}
		items = append(items, legendItem{r.Name, solid})
	}
	if len(items) == 0 {
		return errors.New("loadtest: nothing to plot")
	}
	p.Y.Min, p.Y.Max = 0, niceCeil(top*1.05)
	return savePlot(p, items, path)
}

// PlotPercentiles draws the latency spectrum of each result, on the usual
// HDR "number of nines" axis (50 %, 90 %, 99 %, 99.9 % evenly spaced), with
// a log latency axis, and saves it to path.
func PlotPercentiles(path, title string, rs ...*Result) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Add(plotter.NewGrid())
	maxK, lo, hi := 0.0, math.Inf(1), 0.0
	var items []legendItem
	for i, r := range rs {
		xys := make(plotter.XYs, 0, len(r.Percentiles))
		for _, q := range r.Percentiles {
			if q.Quantile >= 100 {
				continue // the max has no place on a nines axis
			}
			k := nines(q.Quantile)
			maxK = math.Max(maxK, k)
			y := math.Max(q.Ms, 0.001)
			lo, hi = math.Min(lo, y), math.Max(hi, y)
			xys = append(xys, plotter.XY{X: k, Y: y})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", r.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.2)
		p.Add(l)
		items = append(items, legendItem{r.Name, l})
	}
	if len(items) == 0 {
		return errors.New("loadtest: nothing to plot")
	}
	var ticks []plot.Tick
	for k, label := range []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"} {
		if float64(k) <= maxK+0.01 {
			ticks = append(ticks, plot.Tick{Value: float64(k), Label: label})
		}
	}
	ticks = append(ticks, plot.Tick{Value: nines(50), Label: "50%"})
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min = 0
	// A log latency axis when the spectrum spans decades (a tail); a
	// linear one otherwise, where log ticks would show no label.
	if hi/lo >= 20 {
		p.Y.Label.Text = "latency (ms, log)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = lo, hi*1.3
	} else {
		p.Y.Label.Text = "latency (ms)"
		p.Y.Min, p.Y.Max = 0, niceCeil(hi*1.05)
	}
	return savePlot(p, items, path)
}

// nines maps a percentile to −log10(1 − q/100): 90 → 1, 99 → 2, 99.9 → 3.
func nines(q float64) float64 { return -math.Log10(1 - q/100) }

// niceCeil rounds v up to 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
// power of ten, so a linear axis ends on a round tick label.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*pow >= v*(1-1e-9) {
			return m * pow
		}
	}
	return 10 * pow
}
