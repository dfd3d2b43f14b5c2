// Command gensample writes the bundled sample metadata into the directory
// given as its argument. Run it with `go generate ./metastore`.
package main

import (
	"fmt"
	"os"

	"github.com/orderflow/orderflow/metastore"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gensample DIR")
		os.Exit(2)
	}
	if err := metastore.WriteSampleFiles(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
