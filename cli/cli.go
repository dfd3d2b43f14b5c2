// Package cli is the orderflow command line, on cobra (the library of
// kubectl, Hugo and the GitHub CLI: subcommands, --help on stdout, shell
// completion and flag parsing as users of those tools expect). One file per
// command; Main is all main.go calls.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/config"
)

// Main runs the command line of the process and returns its exit status: 0,
// 1 for a failure, 2 for a mistake in the command line or the configuration
// (nothing was started). defaultConfig is the shipped orderflow.yaml, used
// when no file is given and there is none in the working directory.
func Main(defaultConfig []byte) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, defaultConfig)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "orderflow:", err)
	var usageErr usageError
	var cfgErr *config.ConfigError
	if errors.As(err, &usageErr) || errors.As(err, &cfgErr) {
		return 2
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run runs one command line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, defaultConfig []byte) error {
	g := &globals{defaultConfig: defaultConfig, stdout: stdout, stderr: stderr, stopProfile: func() {}}
	defer func() { g.stopProfile() }()
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		// One line, without cobra's suggestions block.
		first, _, _ := strings.Cut(err.Error(), "\n")
		return usageError{first + "; run `orderflow help`"}
	}
	return err
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "orderflow",
		Short: "an order pipeline on Watermill, Kafka and MongoDB",
		Long: `orderflow: an order pipeline on Watermill, Kafka and MongoDB.

Orders are generated, validated against a fraud list, enriched with location
names, routed internally or externally, and delivered to partners.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Sprintf("%v (`%s --help` lists its flags)", err, c.CommandPath())}
	})
	f := root.PersistentFlags()
	f.StringVar(&g.config, "config", "", "configuration file (default: $ORDERFLOW_CONFIG, else ./orderflow.yaml if present, else the shipped one)")
	f.StringVar(&g.brokers, "brokers", "", "Kafka brokers, comma-separated ($ORDERFLOW_KAFKA_BROKERS)")
	f.StringVar(&g.mongoURI, "mongodb-uri", "", "MongoDB connection string ($ORDERFLOW_MONGODB_URI)")
	f.StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn or error")
	f.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file")
	root.AddCommand(demoCmd(g), runCmd(g), generateCmd(g), statusCmd(g), aggregatesCmd(g), metadataCmd(g), configCmd(g),
		topologyCmd(g), poisonCmd(g), benchCmd(g), benchRelayCmd(), embeddedCmd(g))
	return root
}

// args is a positional-argument check whose mistakes are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if err := check(c, a); err != nil {
			return usageError{fmt.Sprintf("%s: %v (`%s --help`)", c.CommandPath(), err, c.CommandPath())}
		}
		return nil
	}
}

// parent is the RunE of a command that only groups others: run alone, or
// with an unknown subcommand, it names them.
func parent(usage string) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, a []string) error {
		if len(a) > 0 {
			return usageError{fmt.Sprintf("unknown command %q for %q; usage: %s", a[0], c.CommandPath(), usage)}
		}
		return usageError{"usage: " + usage}
	}
}
