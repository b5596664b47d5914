package loadtest

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotFormats are the image formats the plots can be saved in, chosen by
// the file's extension.
var PlotFormats = []string{"svg", "png", "pdf"}

// legendItem is one legend entry: a label and the line it names.
type legendItem struct {
	label string
	thumb plot.Thumbnailer
}

// Legend layout.
const (
	legendMargin  = vg.Length(8)
	legendPadding = vg.Length(3)
	legendGap     = vg.Length(16) // between columns
)

// savePlot saves p to path with the legend under the axes, in as many
// columns as the width holds; the image grows by the legend's height. A
// legend inside the data area, gonum's only placement, covers the title,
// the top tick label or the lines themselves as soon as there are a few
// entries.
func savePlot(p *plot.Plot, items []legendItem, path string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	proto := plot.NewLegend()
	sty := proto.TextStyle
	em := sty.Rectangle(" ").Max.X
	var textW, entH vg.Length
	for _, it := range items {
		r := sty.Rectangle(it.label)
		textW = max(textW, r.Max.X)
		entH = max(entH, r.Max.Y)
	}
	colW := proto.ThumbnailWidth + em + textW + legendGap
	cols := max(1, min(len(items), int((plotWidth-2*legendMargin)/colW)))
	rows := (len(items) + cols - 1) / cols
	var legH vg.Length
	if len(items) > 0 {
		legH = vg.Length(rows)*(entH+legendPadding) + 2*legendMargin
	}

	c, err := draw.NewFormattedCanvas(plotWidth, plotHeight+legH, format)
	if err != nil {
		return fmt.Errorf("loadtest: plot %s: %w", path, err)
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	p.Draw(draw.Crop(dc, 0, 0, legH, 0))
	// Row-major: entries read left to right, as they were added.
	for col := range cols {
		l := plot.NewLegend()
		l.Top, l.Left, l.Padding = true, true, legendPadding
		for i := col; i < len(items); i += cols {
			l.Add(items[i].label, items[i].thumb)
		}
		x := dc.Min.X + legendMargin + vg.Length(col)*colW
		l.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: x, Y: dc.Min.Y + legendMargin},
			Max: vg.Point{X: x + colW, Y: dc.Min.Y + legH - legendMargin},
		}})
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("loadtest: plot %s: %w", path, err)
	}
	return f.Close()
}
