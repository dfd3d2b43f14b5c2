package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orderflow/orderflow/embedded"
)

func embeddedCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "embedded [--kafka ADDR] [--mongo ADDR] [--data DIR]",
		Short: "run the embedded Kafka-protocol broker and MongoDB-wire server alone",
		Args:  args(cobra.NoArgs),
	}
	kafkaAddr := c.Flags().String("kafka", "127.0.0.1:9092", "Kafka listen address; empty: no broker")
	mongoAddr := c.Flags().String("mongo", "127.0.0.1:27017", "MongoDB listen address; empty: no server")
	data := c.Flags().String("data", "data", "data directory")
	partitions := c.Flags().Int("partitions", 8, "partitions of topics created automatically")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *kafkaAddr != "" {
			k, err := embedded.StartKafka(embedded.KafkaConfig{Addr: *kafkaAddr, DataDir: *data + "/kafka", Partitions: *partitions})
			if err != nil {
				return err
			}
			defer k.Close()
			fmt.Fprintf(g.stdout, "kafka %s\n", strings.Join(k.Brokers(), ","))
		}
		if *mongoAddr != "" {
			m, err := embedded.StartMongo(embedded.MongoConfig{Addr: *mongoAddr, DataDir: *data + "/mongo"})
			if err != nil {
				return err
			}
			defer m.Close()
			fmt.Fprintf(g.stdout, "mongodb %s\n", m.URI())
		}
		if f, ok := g.stdout.(*os.File); ok {
			f.Sync()
		}
		<-cmd.Context().Done()
		return nil
	}
	return c
}
