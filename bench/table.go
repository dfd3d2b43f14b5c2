package bench

import (
	"fmt"
	"io"
	"strings"
)

// Goals are the targets the table checks the figures against.
var Goals = struct {
	PipelineOverCeiling, PipelineOverBaseline, CommandsPerLine, LargeOverSmall, HalfRateP99ms, RouterPeakMB float64
}{0.5, 10, 0.05, 0.8, 100, 300}

// Print writes the result as a table.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "\norderflow bench: %s lines, %d partitions, %s client, %s\n", group(r.Lines), r.Partitions, r.Client, r.Guarantee)
	fmt.Fprintf(w, "servers: %s\nmachine: %s\nstarted: %s\n\n", r.Servers, r.Machine, r.StartedAt)
	row := func(name, value, goal, verdict string) {
		fmt.Fprintf(w, "%-44s %-26s %-14s %s\n", name, value, goal, verdict)
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	p := r.Pipeline
	row("figure", "value", "goal", "")
	row(strings.Repeat("-", 44), strings.Repeat("-", 26), strings.Repeat("-", 14), "------")
	row("ceiling: raw Kafka, 3 hops", group(int(r.CeilingLPS))+" lines/s", "", "")
	if r.RouterOnlyLPS > 0 {
		row("Watermill Router alone, 3 hops, no broker", group(int(r.RouterOnlyLPS))+" lines/s", "", "")
		row("Router alone / ceiling", fmt.Sprintf("%.3f", r.RouterOnlyOverCeiling), "", "(bounds the next ratio)")
	}
	row("pipeline: generated to delivered", group(int(p.LinesPerSecond))+" lines/s", "", "")
	if nv := r.NoView; nv != nil {
		row("pipeline without order_status", group(int(nv.LinesPerSecond))+" lines/s", "", fmt.Sprintf("(%s lines)", group(nv.Lines)))
		row("pipeline / pipeline without order_status", fmt.Sprintf("%.2f", r.ViewCost), ">= 0.9", check(r.ViewCost >= 0.9))
	}
	if na := r.NoAggregations; na != nil {
		row("pipeline without the aggregations", group(int(na.LinesPerSecond))+" lines/s", "", fmt.Sprintf("(%s lines)", group(na.Lines)))
		row("pipeline / pipeline without aggregations", fmt.Sprintf("%.2f", r.AggregationsRatio), ">= 0.85", check(r.AggregationsRatio >= 0.85))
	}
	if nc := r.NoClaims; nc != nil {
		row("pipeline without line claims", group(int(nc.LinesPerSecond))+" lines/s", "", fmt.Sprintf("(%s lines)", group(nc.Lines)))
		row("pipeline / pipeline without line claims", fmt.Sprintf("%.2f", r.ClaimsRatio), "", "")
	}
	if og := r.OtherGuarantee; og != nil {
		row("pipeline with "+r.OtherGuaranteeName, group(int(og.LinesPerSecond))+" lines/s", "", fmt.Sprintf("(%s lines)", group(og.Lines)))
		row("exactly_once / at_least_once throughput", fmt.Sprintf("%.2f", r.ExactlyOnceOverAtLeastOnce), "", "")
		row("duplicate records / not final, "+r.OtherGuaranteeName, fmt.Sprintf("%d / %d", og.Duplicates, og.NotFinal), "0 / 0", check(og.NotFinal == 0))
	}
	row("pipeline / ceiling", fmt.Sprintf("%.3f", r.PipelineOverCeiling), fmt.Sprintf(">= %.1f", Goals.PipelineOverCeiling), check(r.PipelineOverCeiling >= Goals.PipelineOverCeiling))
	if r.BaselineLPS > 0 {
		row("plain baseline (lookup + update_one/msg)", fmt.Sprintf("%.1f lines/s", r.BaselineLPS), "", fmt.Sprintf("(%s lines)", group(r.BaselineLines)))
		row("pipeline / plain baseline", fmt.Sprintf("%.0fx", r.PipelineOverBaseline), fmt.Sprintf(">= %.0fx", Goals.PipelineOverBaseline), check(r.PipelineOverBaseline >= Goals.PipelineOverBaseline))
		row("baseline MongoDB commands per line", fmt.Sprintf("%.2f", r.BaselineCommandsLine), "", "")
	}
	row("latency p50 / p95 / p99, full speed", fmt.Sprintf("%.0f / %.0f / %.0f ms", p.P50ms, p.P95ms, p.P99ms), "", "")
	if h := r.HalfRate; h != nil {
		row(fmt.Sprintf("latency p50 / p95 / p99, %s lines/s", group(int(h.RateLimit))), fmt.Sprintf("%.1f / %.1f / %.1f ms", h.P50ms, h.P95ms, h.P99ms),
			fmt.Sprintf("p99 <= %.0f ms", Goals.HalfRateP99ms), check(h.P99ms <= Goals.HalfRateP99ms))
	}
	row("MongoDB commands per line", fmt.Sprintf("%.4f", p.CommandsPerLine), fmt.Sprintf("<= %.2f", Goals.CommandsPerLine), check(p.CommandsPerLine <= Goals.CommandsPerLine))
	row("router CPU seconds per 1,000 lines", fmt.Sprintf("%.3f", p.RouterCPUPer1000), "", "")
	row("servers + generator CPU s per 1,000 lines", fmt.Sprintf("%.3f", p.OtherCPUPer1000), "", "")
	peakGoal, peakVerdict := "", ""
	if r.Lines >= 1_000_000 {
		peakGoal, peakVerdict = fmt.Sprintf("<= %.0f MB", Goals.RouterPeakMB), check(p.RouterPeakMB <= Goals.RouterPeakMB)
	}
	row("router peak memory", fmt.Sprintf("%.0f MB", p.RouterPeakMB), peakGoal, peakVerdict)
	row("router memory over the run", mbList(p.RouterRSSMB), "", "")
	if s := r.Small; s != nil {
		row(fmt.Sprintf("throughput %s lines / %s lines", group(r.Lines), group(s.Lines)), fmt.Sprintf("%.2f", r.LargeOverSmall),
			fmt.Sprintf(">= %.1f", Goals.LargeOverSmall), check(r.LargeOverSmall >= Goals.LargeOverSmall))
	}
	for _, rd := range r.Reads {
		at := "at " + group(rd.Orders) + " orders"
		row("one order's status, p50 / max, "+at, fmt.Sprintf("%.1f / %.1f ms", rd.OrderP50ms, rd.OrderMaxms), "<= 50 ms", check(rd.OrderMaxms <= 50))
		row("summary, "+at, fmt.Sprintf("%.1f ms", rd.SummaryMs), "<= 200 ms", check(rd.SummaryMs <= 200))
		row("stuck orders, "+at, fmt.Sprintf("%.1f ms", rd.StuckMs), "<= 200 ms", check(rd.StuckMs <= 200))
	}
	row("external lines delivered (delivery stage on)", group(p.DeliveredLines), "", "")
	row("duplicate records / orders not final", fmt.Sprintf("%d / %d", p.Duplicates, p.NotFinal), "0 / 0", check(p.NotFinal == 0))
}

func mbList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ") + " MB"
}

// group writes n with thousands separators.
func group(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
