package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/middleware"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/poison"
)

// poisonFlags are the flags of poison list and replay.
type poisonFlags struct {
	topic   string
	asJSON  bool
	filters []string
	all     bool
	force   bool
}

func poisonCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "poison list | replay",
		Short: "what is in the poison queue and why; publish entries back to their topics",
		Args:  args(cobra.ArbitraryArgs),
		RunE:  parent("orderflow poison list [--topic T] | replay (--filter F... | --all)"),
	}
	list := &cobra.Command{Use: "list [--topic T] [--json]", Short: "what is in the poison queue, and why", Args: args(cobra.NoArgs)}
	replay := &cobra.Command{
		Use:   "replay (--filter FIELD=VALUE ... | --all) [--force]",
		Short: "publish poisoned messages back to their original topics",
		Long: `Publish poisoned messages back to their original topics. Filter fields:
handler, topic, group, kind, key, order, id, reason (a substring).`,
		Args: args(cobra.NoArgs),
	}
	for _, sub := range []*cobra.Command{list, replay} {
		var f poisonFlags
		sub.Flags().StringVar(&f.topic, "topic", "", "poison topic (default: the configured poison queue)")
		sub.Flags().StringArrayVar(&f.filters, "filter", nil, "the entries matching FIELD=VALUE (handler, topic, group, kind, key, order, id, reason); repeat to narrow")
		if sub == list {
			sub.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
		} else {
			sub.Flags().BoolVar(&f.all, "all", false, "replay every entry not replayed yet")
			sub.Flags().BoolVar(&f.force, "force", false, "replay entries that were replayed before")
		}
		replaying := sub == replay
		sub.RunE = func(cmd *cobra.Command, _ []string) error { return runPoison(cmd.Context(), g, &f, replaying) }
	}
	c.AddCommand(list, replay)
	return c
}

func runPoison(ctx context.Context, g *globals, f *poisonFlags, replay bool) error {
	filter, err := poison.ParseFilter(f.filters)
	if err != nil {
		return usageError{err.Error()}
	}
	if replay && len(filter) == 0 && !f.all {
		return usageError{"poison replay: give --filter FIELD=VALUE or --all"}
	}
	cfg, _, err := g.load()
	if err != nil {
		return err
	}
	topic := f.topic
	if topic == "" {
		topic = cfg.PoisonTopic()
	}
	k, err := kafkaclient.New(cfg.Kafka, false, g.logger(cfg))
	if err != nil {
		return err
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	store := &poison.Store{Brokers: k.Brokers(), Opts: k.ClientOptions(), Marks: m.DB.Collection(poison.ReplayCollection)}
	entries, err := store.List(ctx, topic)
	if err != nil {
		return err
	}
	var selected []poison.Entry
	for _, e := range entries {
		if filter.Match(e) {
			selected = append(selected, e)
		}
	}
	if !replay {
		if f.asJSON {
			return printJSON(g, selected)
		}
		for _, e := range selected {
			replayed := ""
			if e.Replayed != nil {
				replayed = " [replayed " + e.Replayed.Format("2006-01-02 15:04:05") + "]"
			}
			fmt.Fprintf(g.stdout, "%s  order %s  from %s/%s@%s by %s (%s)  %s: %s%s\n",
				e.ID, e.Key, e.Topic, e.Partition, e.Offset, e.Handler, e.Group, e.Kind, e.Reason, replayed)
		}
		fmt.Fprintf(g.stdout, "%d entries in %s\n", len(selected), topic)
		return nil
	}
	res, err := store.Replay(ctx, selected, f.force)
	for _, e := range res.Excerpts {
		fmt.Fprintf(g.stdout, "not replayed: %s holds a %s-byte excerpt of a line of %s bytes; the line is in %s/%s@%s\n",
			e.ID, strconv.Itoa(len(e.Payload)), e.Metadata[middleware.SizeKey], e.Topic, e.Partition, e.Offset)
	}
	if f.force || res.Skipped == 0 {
		fmt.Fprintf(g.stdout, "replayed %d\n", res.Replayed)
	} else {
		fmt.Fprintf(g.stdout, "replayed %d, skipped %d already replayed (use --force to replay them again)\n", res.Replayed, res.Skipped)
	}
	return err
}
