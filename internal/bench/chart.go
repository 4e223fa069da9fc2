package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The chart is hand-written SVG: small multiples of grouped bars, one panel
// per scenario, with a whisker from the slowest to the fastest repetition
// where a cell was repeated. No dependency, and it renders on GitHub.

// colors of the strategies and ceilings in every panel.
var colors = map[string]string{
	keys:              "#1f77b4",
	table:             "#ff7f0e",
	ser:               "#2ca02c",
	strategyCeiling:   "#7f7f7f",
	strategyCeilingTx: "#c7c7c7",
	strategyOutbox:    "#17becf",
	strategyDirect:    "#1f77b4",
	strategyTemporal:  "#d62728",
	// Lighter shades of the regular activity's.
	strategyTemporalLocal: "#ff9896",
	strategyTemporalEager: "#e377c2",

	strategyProjections: "#bcbd22",
}

func colorOf(name string) string {
	if c, ok := colors[name]; ok {
		return c
	}
	return "#9467bd"
}

// bar is one bar of a group.
type bar struct {
	series   string
	value    float64
	lo, hi   float64 // whisker; equal to value when not repeated
	hasRange bool
}

// group is a labelled group of bars on the x axis.
type group struct {
	label string
	bars  []bar
}

// panel is one small chart.
type panel struct {
	title, unit string
	groups      []group
}

const (
	panelW, panelH = 380, 250
	marginL        = 58
	marginR        = 10
	marginT        = 28
	marginB        = 34
	columns        = 3
	legendH        = 30
)

// WriteSVG renders the results as a chart of throughput per scenario and
// client count, p50 latency per history size and catch-up read rates.
func WriteSVG(w io.Writer, res *Results) error {
	var panels []panel
	for _, sc := range []string{ScenarioDisjoint, ScenarioHot, ScenarioMix, ScenarioStream, ScenarioOutbox, ScenarioProjections, ScenarioTemporal} {
		if p := throughputPanel(res, sc); len(p.groups) > 0 {
			panels = append(panels, p)
		}
	}
	if p := historyPanel(res); len(p.groups) > 0 {
		panels = append(panels, p)
	}
	if p := catchUpPanel(res); len(p.groups) > 0 {
		panels = append(panels, p)
	}
	rows := (len(panels) + columns - 1) / columns
	width, height := columns*panelW, rows*panelH+legendH+20

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="8" y="16" font-size="13" font-weight="bold">factos benchmarks, run %s (%d CPUs, %s)</text>`+"\n",
		html.EscapeString(res.Run.ID), res.Machine.CPUs, html.EscapeString(shortVersion(res.Machine.Postgres)))
	legend(&b, res, 20+4)
	for i, p := range panels {
		x := (i % columns) * panelW
		y := legendH + 20 + (i/columns)*panelH
		drawPanel(&b, p, x, y)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func legend(b *strings.Builder, res *Results, y int) {
	var names []string
	names = append(names, res.Run.Strategies...)
	for _, s := range res.strategiesOf(ScenarioDisjoint) {
		if s == strategyCeiling || s == strategyCeilingTx {
			names = append(names, s)
		}
	}
	x := 8
	for _, n := range names {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, x, y, colorOf(n))
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+16, y+10, html.EscapeString(n))
		x += 24 + 7*len(n) + 14
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" fill="#555">whiskers: slowest–fastest repetition</text>`+"\n", x+10, y+10)
}

func throughputPanel(res *Results, scenario string) panel {
	p := panel{title: scenario + ": commands/s by clients", unit: "/s"}
	for _, n := range res.clientCounts(scenario) {
		g := group{label: fmt.Sprintf("%d", n)}
		for _, s := range res.strategiesOf(scenario) {
			if c := res.find(scenario, s, n, 0); c != nil {
				g.bars = append(g.bars, bar{series: s, value: c.PerSecond, lo: c.PerSecondMin, hi: c.PerSecondMax, hasRange: len(c.Runs) > 1})
			}
		}
		p.groups = append(p.groups, g)
	}
	return p
}

func historyPanel(res *Results) panel {
	counts := res.clientCounts(ScenarioHistory)
	if len(counts) == 0 {
		return panel{}
	}
	n := counts[0]
	p := panel{title: fmt.Sprintf("history: p50 ms by events stored (%d client)", n), unit: "ms"}
	for _, size := range res.historySizes() {
		g := group{label: count(size)}
		for _, s := range res.strategiesOf(ScenarioHistory) {
			if c := res.find(ScenarioHistory, s, n, size); c != nil {
				g.bars = append(g.bars, bar{series: s, value: c.P50Ms, lo: c.P50Ms, hi: c.P50Ms})
			}
		}
		p.groups = append(p.groups, g)
	}
	return p
}

func catchUpPanel(res *Results) panel {
	p := panel{title: "catch-up: records/s read", unit: "/s"}
	type key struct {
		filter  string
		writers int
	}
	var order []key
	byKey := map[key][]CatchUp{}
	for _, c := range res.CatchUp {
		k := key{c.Filter, c.Writers}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	for _, k := range order {
		label := "all"
		if k.filter != "none" {
			label = "filtered"
		}
		if k.writers > 0 {
			label += fmt.Sprintf(" +%dw", k.writers)
		}
		g := group{label: label}
		for _, c := range byKey[k] {
			g.bars = append(g.bars, bar{series: c.Strategy, value: c.RecordsPerS, lo: c.RecordsPerS, hi: c.RecordsPerS})
		}
		p.groups = append(p.groups, g)
	}
	return p
}

func drawPanel(b *strings.Builder, p panel, x0, y0 int) {
	plotW := float64(panelW - marginL - marginR)
	plotH := float64(panelH - marginT - marginB)
	top := 0.0
	for _, g := range p.groups {
		for _, br := range g.bars {
			top = max(top, br.value, br.hi)
		}
	}
	top = niceCeil(top)
	fmt.Fprintf(b, `<g transform="translate(%d,%d)">`+"\n", x0, y0)
	fmt.Fprintf(b, `<text x="%d" y="16" font-weight="bold">%s</text>`+"\n", marginL, html.EscapeString(p.title))
	// Axis and grid: four steps.
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := float64(marginT) + plotH - plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, marginL, panelW-marginR, y, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", marginL-4, y+4, axisLabel(v))
	}
	if len(p.groups) == 0 || top == 0 {
		b.WriteString("</g>\n")
		return
	}
	groupW := plotW / float64(len(p.groups))
	for gi, g := range p.groups {
		gx := float64(marginL) + groupW*float64(gi)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`+"\n", gx+groupW/2, float64(marginT)+plotH+14, html.EscapeString(g.label))
		if len(g.bars) == 0 {
			continue
		}
		barW := groupW * 0.8 / float64(len(g.bars))
		for bi, br := range g.bars {
			bx := gx + groupW*0.1 + barW*float64(bi)
			h := plotH * br.value / top
			y := float64(marginT) + plotH - h
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				bx, y, max(barW-1, 1), h, colorOf(br.series), html.EscapeString(br.series), html.EscapeString(g.label), axisLabel(br.value)+p.unit)
			if br.hasRange && br.hi > br.lo {
				cx := bx + barW/2
				ylo := float64(marginT) + plotH - plotH*br.lo/top
				yhi := float64(marginT) + plotH - plotH*br.hi/top
				fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`, cx, cx, ylo, yhi)
				fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`, cx-3, cx+3, yhi, yhi)
				fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", cx-3, cx+3, ylo, ylo)
			}
		}
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#444"/>`+"\n", marginL, panelW-marginR, float64(marginT)+plotH, float64(marginT)+plotH)
	b.WriteString("</g>\n")
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// axisLabel renders 12500 as 12.5k and 0.25 as 0.25.
func axisLabel(v float64) string {
	switch {
	case v >= 1e6:
		return trimZeros(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZeros(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return trimZeros(fmt.Sprintf("%.2f", v))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// shortVersion cuts "PostgreSQL 15.8 (Debian ...) on x86_64..." to
// "PostgreSQL 15.8".
func shortVersion(v string) string {
	f := strings.Fields(v)
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return v
}
