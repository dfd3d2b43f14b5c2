package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/metastore"
)

func metadataCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "metadata load [PATH...]",
		Short: "load fraud IPs, locations and products",
		Args:  args(cobra.ArbitraryArgs),
		RunE:  parent("orderflow metadata load [PATH...]"),
	}
	load := &cobra.Command{
		Use:   "load [PATH...]",
		Short: "load the bundled sample, or files (JSON arrays, JSON lines, mongoexport output)",
		RunE: func(cmd *cobra.Command, paths []string) error {
			var ds metastore.Dataset
			var err error
			if len(paths) == 0 {
				ds, err = metastore.SampleDataset()
			} else {
				ds, err = metastore.ParseFiles(paths...)
			}
			if err != nil {
				return err // names the file and line; nothing was written
			}
			_, m, err := g.connect()
			if err != nil {
				return err
			}
			defer m.Close(context.Background())
			store := metastore.NewStore(m.DB)
			if err := store.EnsureIndexes(cmd.Context()); err != nil {
				fmt.Fprintln(g.stderr, "warning:", err)
			}
			res, err := store.Apply(cmd.Context(), ds)
			if err != nil {
				return err
			}
			for _, coll := range []string{metastore.FraudIPCollection, metastore.LocationCollection, metastore.ProductCollection} {
				if r := res[coll]; r != nil {
					fmt.Fprintf(g.stdout, "%-17s %5d new  %5d updated  %5d unchanged\n", coll, r.Inserted, r.Updated, r.Unchanged)
				}
			}
			return nil
		},
	}
	c.AddCommand(load)
	return c
}
