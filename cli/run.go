package cli

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/app"
)

func runCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "run [--only NAME,...]",
		Short: "the router process; run several to share the work",
		Args:  args(cobra.NoArgs),
	}
	only := c.Flags().StringSlice("only", nil, "run only these handlers, comma-separated")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, name, err := g.load()
		if err != nil {
			return err
		}
		log := g.logger(cfg)
		slog.SetDefault(log)
		log.Info("configuration loaded", "file", name)
		tuneGC(log)
		if err := cfg.CheckOnly(*only); err != nil {
			return err
		}
		p, err := app.NewPipeline(cmd.Context(), cfg, app.Options{Only: *only, Logger: log})
		if err != nil {
			return err
		}
		return p.Run(cmd.Context(), nil)
	}
	return c
}

// tuneGC sets the garbage collector for a router process, unless GOGC or
// GOMEMLIMIT say otherwise: collect less often (GOGC 400: the live heap is
// small and many goroutines make each collection costly), but within a
// 192 MiB soft limit, so that memory stays bounded.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
	log.Debug("garbage collector", "memory_limit", debug.SetMemoryLimit(-1)) // -1 reads without changing
}
