// Command orderflow is an order-processing pipeline: orders are generated,
// validated against a fraud list, enriched with location names, routed
// internally or externally, and delivered to partners, on a Watermill router
// over Kafka, with metadata and order status in MongoDB.
//
// Run `orderflow help` for the commands; they live in the cli package.
package main

import (
	_ "embed"
	"os"

	"github.com/orderflow/orderflow/cli"
)

// defaultConfig is orderflow.yaml as shipped, used when no file is given
// and there is none in the working directory.
//
//go:embed orderflow.yaml
var defaultConfig []byte

func main() { os.Exit(cli.Main(defaultConfig)) }
