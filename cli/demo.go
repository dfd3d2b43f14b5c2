package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/demo"
)

func demoCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "demo [--orders N] [--rate R] [--data DIR] [--exit]",
		Short: "everything on this machine: embedded servers, sample metadata, the router and N orders",
		Long: `Everything on this machine: embedded Kafka and MongoDB (unless configured),
the sample metadata, the router, and N orders. It keeps running (dashboard
and API) until interrupted, or stops once every order is final with --exit.`,
		Args: args(cobra.NoArgs),
	}
	orders := c.Flags().Int("orders", 2000, "orders to generate")
	rate := c.Flags().Float64("rate", 0, "orders per second (0: as fast as possible)")
	data := c.Flags().String("data", "data", "directory for the embedded servers' data")
	exit := c.Flags().Bool("exit", false, "stop once every order is final")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, _, err := g.load()
		if err != nil {
			return err
		}
		if g.logLevel == "" && os.Getenv("ORDERFLOW_LOG_LEVEL") == "" {
			cfg.Log.Level = "warn" // the demo's own output tells the story
		}
		log := g.logger(cfg)
		slog.SetDefault(log)
		return demo.Run(cmd.Context(), cfg, demo.Options{
			Orders: *orders, Rate: *rate, DataDir: *data, Exit: *exit,
			Out: g.stdout, TTY: isTTY(g.stdout), Logger: log,
		})
	}
	return c
}
