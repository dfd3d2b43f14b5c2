package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

func configCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "config check | print | env",
		Short: "validate the configuration, print it with secrets masked, or list its variables",
		Args:  args(cobra.ArbitraryArgs),
		RunE:  parent("orderflow config check | print | env"),
	}
	c.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "validate the configuration, naming the key and line of every problem",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			cfg, name, err := g.load()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: ok (%d handlers, %d topics)\n", name, len(cfg.Handlers), len(cfg.Topics))
			return nil
		},
	}, &cobra.Command{
		Use:   "print",
		Short: "print the configuration in effect, secrets masked",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := g.load()
			if err != nil {
				return err
			}
			out, err := cfg.Masked()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}, &cobra.Command{
		Use:   "env",
		Short: "list every ORDERFLOW_ variable that overrides a setting",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := g.load()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, strings.Join(cfg.EnvNames(), "\n"))
			return err
		},
	})
	return c
}

func topologyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "topology [--mermaid]",
		Short: "the configured graph: sources, handlers, groups, middleware, outputs, poison queue",
		Args:  args(cobra.NoArgs),
	}
	mermaid := c.Flags().Bool("mermaid", false, "print a Mermaid flowchart")
	c.RunE = func(*cobra.Command, []string) error {
		cfg, _, err := g.load()
		if err != nil {
			return err
		}
		top := cfg.Topology()
		if *mermaid {
			_, err = io.WriteString(g.stdout, top.Mermaid())
		} else {
			_, err = io.WriteString(g.stdout, top.String())
		}
		return err
	}
	return c
}
