package app

import (
	"strings"
	"testing"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/mongoclient"
)

func TestDurableMongoWriteConcernByDefault(t *testing.T) {
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := mongoclient.WriteConcern(cfg.MongoDB)
	if wc == nil || wc.W != "majority" || wc.Journal == nil || !*wc.Journal {
		t.Fatalf("write concern %+v, want majority with journal", wc)
	}
	cfg.MongoDB.WriteConcern = "fast"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "mongodb.write_concern") {
		t.Fatalf("a bad write concern: %v", err)
	}
}
