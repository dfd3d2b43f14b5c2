package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/aggregate"
)

func aggregatesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "aggregates [--json] [--top N] [NAME [KEY...]]",
		Short: "the streaming aggregations: totals, the last minutes, top groups",
		Long: `The streaming aggregations of the configuration (order_price,
location_product_count): each one's totals over every line counted, its
groups, the last minutes of line time and, for a running count, its top
groups. With a name, that aggregation only; with keys too, those groups'
results (an order id for order_price, a location id for
location_product_count). Every read is of small collections or by _id.`,
		Example: `  orderflow aggregates
  orderflow aggregates location_product_count --top 3
  orderflow aggregates order_price 11100 --json`,
	}
	asJSON := c.Flags().Bool("json", false, "print JSON")
	top := c.Flags().Int("top", 5, "how many top groups to show")
	c.RunE = func(cmd *cobra.Command, a []string) error {
		if *top < 0 || *top > 200 {
			return usageError{fmt.Sprintf("aggregates: --top %d is outside 0..200", *top)}
		}
		cfg, m, err := g.connect()
		if err != nil {
			return err
		}
		defer m.Close(context.Background())
		ctx := cmd.Context()
		r := aggregate.NewReader(m.DB, cfg)
		names := r.Names()
		if len(a) > 0 {
			if !slices.Contains(names, a[0]) {
				return usageError{fmt.Sprintf("aggregates: no aggregation %q (configured: %s)", a[0], strings.Join(names, ", "))}
			}
			names = a[:1]
		}
		if len(a) > 1 {
			groups := map[string]any{}
			for _, key := range a[1:] {
				res, err := r.Group(ctx, a[0], key)
				if err != nil {
					return err
				}
				if res != nil {
					groups[key] = res
				} else {
					groups[key] = nil // null in JSON, "no result" in text
				}
			}
			if *asJSON {
				return printJSON(g, groups)
			}
			for _, key := range a[1:] {
				if groups[key] == nil {
					fmt.Fprintf(g.stdout, "%s %s: no result (yet)\n", a[0], key)
					continue
				}
				fmt.Fprintf(g.stdout, "%s %s: %s\n", a[0], key, describeFields(groups[key].(map[string]any)))
			}
			return nil
		}
		var views []aggregate.View
		for _, name := range names {
			v, err := r.View(ctx, name, *top)
			if err != nil {
				return err
			}
			views = append(views, v)
		}
		if *asJSON {
			return printJSON(g, map[string]any{"aggregates": views})
		}
		for i, v := range views {
			if i > 0 {
				fmt.Fprintln(g.stdout)
			}
			printView(g, v)
		}
		return nil
	}
	return c
}

func printView(g *globals, v aggregate.View) {
	fmt.Fprintf(g.stdout, "%s (by %s, collection %s): %d groups", v.Name, v.GroupBy, v.Collection, v.Groups)
	for _, k := range slices.Sorted(maps.Keys(v.Totals)) {
		fmt.Fprintf(g.stdout, ", %s %s", k, formatNumber(v.Totals[k]))
		if v.Groups > 0 {
			fmt.Fprintf(g.stdout, " (%s a group)", formatNumber(v.PerGroup[k]))
		}
	}
	fmt.Fprintln(g.stdout)
	if len(v.Minutes) > 0 {
		fmt.Fprintln(g.stdout, "  last minutes:")
		for _, m := range v.Minutes[max(0, len(v.Minutes)-5):] {
			fmt.Fprintf(g.stdout, "    %s  %d groups", m.Start.Format("2006-01-02 15:04"), m.Groups)
			for _, k := range slices.Sorted(maps.Keys(m.Totals)) {
				fmt.Fprintf(g.stdout, ", %s %s", k, formatNumber(m.Totals[k]))
			}
			fmt.Fprintln(g.stdout)
		}
	}
	if len(v.Top) > 0 {
		fmt.Fprintln(g.stdout, "  top:")
		for _, t := range v.Top {
			fmt.Fprintf(g.stdout, "    %s\n", describeFields(t))
		}
	}
}

// describeFields writes a result's fields as key=value, in key order.
func describeFields(m map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func formatNumber(f float64) string {
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.2f", f)
}

// printJSON writes v to stdout as indented JSON, for every --json.
func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
