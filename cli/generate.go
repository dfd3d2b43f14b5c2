package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/generator"
	"github.com/orderflow/orderflow/progress"
	"github.com/orderflow/orderflow/tracing"
)

func generateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "generate --orders N [--rate R] [--seed S]",
		Short: "publish random orders to raw_order",
		Args:  args(cobra.NoArgs),
	}
	orders := c.Flags().Int("orders", 0, "orders to generate (required)")
	rate := c.Flags().Float64("rate", 0, "orders per second (0: as fast as possible)")
	seed := c.Flags().Uint64("seed", 0, "random seed (0: random)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *orders <= 0 {
			return usageError{"generate: --orders N is required"}
		}
		cfg, _, err := g.load()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if cfg.Tracing.Enabled {
			stopTracing, err := tracing.Setup(ctx, tracing.Config{Exporter: cfg.Tracing.Exporter, Endpoint: cfg.Tracing.Endpoint, ServiceName: cfg.Tracing.ServiceName}, nil)
			if err != nil {
				return err
			}
			defer stopTracing(context.Background())
		}
		bar := progress.New(g.stdout, "generate", *orders, isTTY(g.stdout))
		res, err := generator.Generate(ctx, cfg, generator.Options{Orders: *orders, Rate: *rate, Seed: *seed, Logger: g.logger(cfg), Progress: bar.Set})
		bar.Finish()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "published %d orders (%d lines), ids %d to %d, in %s\n", res.Orders, res.Lines, res.FirstID, res.LastID, res.Took.Round(1e6))
		return nil
	}
	return c
}
