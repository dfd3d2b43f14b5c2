package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFileWorksAsWritten checks the invariants of docker-compose.yml
// and the Dockerfile that a machine without Docker can check: replicas of the
// router do not clash on a host port, Kafka keeps its data on its volume, and
// the build image is the Go release go.mod asks for.
func TestComposeFileWorksAsWritten(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			// Hostname and ContainerName would be one for every replica.
			Hostname      string `yaml:"hostname"`
			ContainerName string `yaml:"container_name"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	// `docker compose up --scale orderflow=3`: each replica needs a host
	// port of its own, so the router's is a range, or left to Docker.
	router := compose.Services["orderflow"]
	for _, p := range router.Ports {
		host, _, _ := strings.Cut(strings.TrimPrefix(p, "127.0.0.1:"), ":")
		if !strings.Contains(host, "-") {
			t.Errorf("orderflow publishes the fixed host port %q: scaled replicas would clash", p)
		}
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("orderflow port %q is not bound to loopback", p)
		}
	}
	// Replicas are static members under their host names (the container
	// ids): one host name for all of them would make them one member.
	if router.Environment["ORDERFLOW_KAFKA_INSTANCE_ID_FROM_HOSTNAME"] != "true" {
		t.Errorf("orderflow replicas are dynamic members: a replica restarted in place waits for a rebalance")
	}
	if router.Hostname != "" || router.ContainerName != "" {
		t.Errorf("orderflow sets hostname %q / container_name %q: replicas would share an instance id, or not scale", router.Hostname, router.ContainerName)
	}
	// Kafka's log dirs must be where its volume is mounted.
	kafka := compose.Services["kafka"]
	dirs := kafka.Environment["KAFKA_LOG_DIRS"]
	if dirs == "" {
		t.Fatal("KAFKA_LOG_DIRS is unset: the image keeps its data in /tmp/kraft-combined-logs, off the volume")
	}
	mounted := false
	for _, v := range kafka.Volumes {
		name, path, _ := strings.Cut(v, ":")
		if path == dirs {
			if _, ok := compose.Volumes[name]; !ok {
				t.Errorf("kafka mounts %q, which is not a named volume", name)
			}
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("KAFKA_LOG_DIRS %s is not a mounted volume: %v", dirs, kafka.Volumes)
	}
	// The image's user owns /var/lib/kafka/data (apache/kafka creates it);
	// a new named volume there takes that owner.
	if dirs != "/var/lib/kafka/data" || !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka data in %s on %s: the owner of a fresh volume is only right at /var/lib/kafka/data of apache/kafka", dirs, kafka.Image)
	}

	// The build image is the toolchain go.mod asks for (GOTOOLCHAIN=local).
	gomod, _ := os.ReadFile("go.mod")
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	dockerfile, _ := os.ReadFile("Dockerfile")
	got := regexp.MustCompile(`(?m)^FROM golang:(\S+) AS build$`).FindSubmatch(dockerfile)
	if want == nil || got == nil || string(got[1]) != string(want[1]) {
		t.Errorf("Dockerfile builds with golang:%s, go.mod asks for go %s", got, want)
	}

	// The README's compose commands are the file's own.
	readme, _ := os.ReadFile("README.md")
	for _, line := range regexp.MustCompile(`(?m)^docker compose .*$`).FindAll(readme, -1) {
		cmd := string(line)
		if !strings.Contains(string(data), strings.TrimSpace(cmd)) && !strings.Contains(cmd, "--scale") {
			t.Errorf("README runs %q, which docker-compose.yml does not document", cmd)
		}
	}
}
