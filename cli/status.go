package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/app"
	"github.com/orderflow/orderflow/status"
)

func statusCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [--json] [--all] [ORDER_ID...]",
		Short: "the status of the given orders, then a count per status",
		Long: `The status of the given orders, one line each, then a count per status.
Without an id, the counts of all orders. The statuses and the counts come from
the order_status view, in time that does not grow with the history; --json
adds each order's lines and history, and --all lists every order, both read
from the records.`,
	}
	asJSON := c.Flags().Bool("json", false, "print JSON, with each order's lines and history")
	all := c.Flags().Bool("all", false, "list every order (this folds the whole history, so it takes time at scale)")
	c.RunE = func(cmd *cobra.Command, a []string) error {
		var ids []int64
		for _, s := range a {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id <= 0 {
				return usageError{fmt.Sprintf("status: %q is not an order id", s)}
			}
			ids = append(ids, id)
		}
		cfg, m, err := g.connect()
		if err != nil {
			return err
		}
		defer m.Close(context.Background())
		ctx := cmd.Context()
		// A reader creates the indexes it reads by, whether or not a router ran.
		if err := status.EnsureIndexes(ctx, m.DB.Collection(status.Collection)); err != nil {
			fmt.Fprintln(g.stderr, "warning:", err)
		}
		reader := app.StatusReader(cfg, m.DB)
		current := app.CurrentStatusReader(cfg, m.DB)
		var orders []*status.Order
		var sum status.Summary
		switch {
		case len(ids) > 0 && (*asJSON || current == nil):
			orders, err = reader.Orders(ctx, ids...)
			sum = status.Summarize(orders)
		case len(ids) > 0:
			orders, err = current.Orders(ctx, ids...)
			sum = status.Summarize(orders)
		case *all || current == nil:
			orders, err = reader.All(ctx)
			sum = status.Summarize(orders)
		default:
			sum, err = current.Summary(ctx)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printStatusJSON(g, ids, orders, sum)
		}
		found := map[int64]bool{}
		for _, o := range orders {
			found[o.ID] = true
			line := fmt.Sprintf("order_id: %d status is %s", o.ID, o.Status)
			if o.Reason != "" {
				line += " (" + o.Reason + ")"
			}
			fmt.Fprintln(g.stdout, line)
		}
		for _, id := range ids {
			if !found[id] {
				fmt.Fprintf(g.stdout, "order_id: %d is unknown\n", id)
			}
		}
		fmt.Fprintln(g.stdout)
		var rows []string
		for st, n := range sum.ByStatus {
			if n > 0 {
				rows = append(rows, fmt.Sprintf("%-10s %d", string(st)+":", n))
			}
		}
		sort.Strings(rows)
		for _, r := range rows {
			fmt.Fprintln(g.stdout, r)
		}
		fmt.Fprintf(g.stdout, "%-10s %d\n", "total:", sum.Orders)
		return nil
	}
	return c
}

func printStatusJSON(g *globals, ids []int64, orders []*status.Order, sum status.Summary) error {
	var missing []int64
	for _, id := range ids {
		found := false
		for _, o := range orders {
			found = found || o.ID == id
		}
		if !found {
			missing = append(missing, id)
		}
	}
	return printJSON(g, struct {
		Orders  []*status.Order `json:"orders"`
		Unknown []int64         `json:"unknown,omitempty"`
		Summary status.Summary  `json:"summary"`
	}{orders, missing, sum})
}
