package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strings"
)

// A panel is one plot of the chart: a metric against the sweep of the
// scenarios whose names start with prefix.
type panel struct {
	title  string
	prefix string // "subscribers=" or "topics="
	xlabel string
	logX   bool
	metric metric
}

var panels = []panel{
	{"hub CPU s per million deliveries", "subscribers=", "subscribers (one topic, 5 events/s)", false, sweepMetrics[0]},
	{"hub RSS (MiB)", "subscribers=", "subscribers (one topic, 5 events/s)", false, sweepMetrics[3]},
	{"hub CPU s for 120 events", "topics=", "topics (10,000 subscribers, 10 events/s)", true, sweepMetrics[1]},
}

var colors = []string{"#d1495b", "#00798c", "#edae49", "#66a182", "#2e4057"}

// chart draws the sweeps' medians as an SVG: one panel per figure, one
// line per hub.
func chart(scenarios []scenario, names []string, results map[string]map[string][]map[string]any) []byte {
	const pw, ph, left, top, gap = 300.0, 220.0, 55.0, 40.0, 70.0
	width := left + float64(len(panels))*(pw+gap)
	height := top + ph + 90
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, p := range panels {
		x0 := left + float64(i)*(pw+gap)
		type point struct{ x, y float64 }
		lines := map[string][]point{}
		xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
		for _, sc := range scenarios {
			if !strings.HasPrefix(sc.name, p.prefix) {
				continue
			}
			for _, name := range names {
				v, ok := medianOf(results[sc.name][name], p.metric)
				if !ok {
					continue
				}
				lines[name] = append(lines[name], point{sc.x, v})
				xmin, xmax, ymax = math.Min(xmin, sc.x), math.Max(xmax, sc.x), math.Max(ymax, v)
			}
		}
		if len(lines) == 0 {
			continue
		}
		if p.logX {
			xmin, xmax = math.Log10(xmin), math.Log10(xmax)
		} else {
			xmin = 0
		}
		if xmax == xmin {
			xmax = xmin + 1
		}
		ymax = niceCeil(ymax)
		px := func(x float64) float64 {
			if p.logX {
				x = math.Log10(x)
			}
			return x0 + (x-xmin)/(xmax-xmin)*pw
		}
		py := func(y float64) float64 { return top + ph - y/ymax*ph }
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, top-15, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", x0, top, pw, ph)
		for k := 0; k <= 4; k++ {
			y := ymax * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x0, x0+pw, py(y), py(y))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-5, py(y)+4, short(y))
		}
		var ticks []float64
		for _, sc := range scenarios {
			if strings.HasPrefix(sc.name, p.prefix) {
				ticks = append(ticks, sc.x)
			}
		}
		for _, t := range ticks {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(t), top+ph+15, short(t))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+pw/2, top+ph+32, html.EscapeString(p.xlabel))
		for j, name := range names {
			pts := lines[name]
			if len(pts) == 0 {
				continue
			}
			var path []string
			for _, pt := range pts {
				path = append(path, fmt.Sprintf("%.1f,%.1f", px(pt.x), py(pt.y)))
			}
			c := colors[j%len(colors)]
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), c)
			for _, pt := range pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(pt.x), py(pt.y), c)
			}
		}
	}
	for j, name := range names {
		x := left + float64(j)*120
		y := top + ph + 65
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="4" fill="%s"/>`, x, y-4, colors[j%len(colors)])
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+20, y, html.EscapeString(name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
