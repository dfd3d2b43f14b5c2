package cli

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/bench"
)

func benchCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench [--lines N] [--partitions P] [--json FILE]",
		Short: "measure the pipeline against raw Kafka and a plain Watermill baseline",
		Args:  args(cobra.NoArgs),
	}
	f := c.Flags()
	lines := f.Int("lines", 100_000, "lines in the main run")
	small := f.Int("small", -1, "lines of the run it is compared with for scaling (default 10000 when --lines is at least 100000; 0 skips)")
	half := f.Int("half-rate-lines", 20_000, "lines of the run at half the maximum rate, for latency (0 skips)")
	baseLines := f.Int("baseline-lines", 3_000, "most lines of the plain baseline run (0 skips)")
	baseTime := f.Duration("baseline-time", time.Minute, "longest the plain baseline runs")
	partitions := f.Int("partitions", 8, "partitions of every topic")
	readOrders := f.Int("read-orders", 1_000_000, "orders to grow the order_status view to before timing its reads again (0: at the run's size only)")
	noView := f.Int("no-view-lines", -1, "lines of the run without the order_status collection, to compare (default: as --lines; 0 skips)")
	noAgg := f.Int("no-aggregations-lines", -1, "lines of the run without the aggregations, to compare (default: as --lines; 0 skips)")
	noClaims := f.Int("no-claims-lines", -1, "lines of the run without line claims (status.line_claims false), to compare (default: as --lines; 0 skips)")
	otherGuarantee := f.Int("other-guarantee-lines", -1, "lines of the run with the other kafka.guarantee (exactly_once or at_least_once), to compare (default: as --lines; 0 skips)")
	jsonPath := f.String("json", "", "also write the figures to this file")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *noAgg < 0 {
			*noAgg = *lines
		}
		if *otherGuarantee < 0 {
			*otherGuarantee = *lines
		}
		if *noView < 0 {
			*noView = *lines
		}
		if *noClaims < 0 {
			*noClaims = *lines
		}
		if *small < 0 {
			*small = 0
			if *lines >= 100_000 {
				*small = 10_000
			}
		}
		cfg, _, err := g.load()
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		res, err := bench.Run(cmd.Context(), bench.Options{
			Lines: *lines, SmallLines: *small, HalfRateLines: min(*half, *lines), BaselineLines: *baseLines, BaselineTime: *baseTime,
			NoViewLines: *noView, NoAggregationsLines: *noAgg, NoClaimsLines: *noClaims, OtherGuaranteeLines: *otherGuarantee, ReadOrders: *readOrders, Partitions: *partitions, Config: cfg, Exe: exe, Out: g.stdout, Logger: g.logger(cfg),
		})
		if err != nil {
			return err
		}
		res.Print(g.stdout)
		if *jsonPath != "" {
			return res.WriteJSON(*jsonPath)
		}
		return nil
	}
	return c
}

// benchRelayCmd is the ceiling's relay, run by bench as a child process.
func benchRelayCmd() *cobra.Command {
	c := &cobra.Command{Use: "bench-relay", Hidden: true, Args: args(cobra.NoArgs)}
	brokers := c.Flags().String("brokers", "", "brokers")
	topics := c.Flags().String("topics", "", "topics, comma-separated, in hop order")
	group := c.Flags().String("group", "", "consumer group prefix")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return bench.Relay(cmd.Context(), strings.Split(*brokers, ","), nil, strings.Split(*topics, ","), *group)
	}
	return c
}
