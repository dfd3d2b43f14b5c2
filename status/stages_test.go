package status

import (
	"slices"
	"testing"

	"github.com/orderflow/orderflow/config"
)

// TestConfigKnowsTheStages: the configuration checks a handler's status
// against its own list, as it imports nothing of the pipeline.
func TestConfigKnowsTheStages(t *testing.T) {
	var ours []string
	for _, st := range Stages {
		ours = append(ours, string(st))
	}
	if !slices.Equal(ours, config.Stages) {
		t.Fatalf("config.Stages %v, status.Stages %v", config.Stages, ours)
	}
}
