// Package embedded runs the stand-in servers the demo, the tests and the
// benchmark use when no real ones are configured: a Kafka-protocol broker
// (kfake) and a MongoDB-wire server (FerretDB v1 on SQLite), both in-process
// and on loopback.
package embedded

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaConfig configures the embedded broker.
type KafkaConfig struct {
	// Addr is the listen address; "127.0.0.1:0" picks a free loopback port.
	Addr string
	// Partitions is the partition count of topics created automatically.
	Partitions int
	// DataDir, when set, keeps topics and committed offsets across restarts.
	DataDir string
	// Configs are broker configs, such as log.retention.ms.
	Configs map[string]string
	// Advertise, when set, is the address the broker gives clients in its
	// metadata instead of its own: a proxy in front of it, or a name
	// reachable from containers.
	Advertise string
}

func (c *KafkaConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
}

// Kafka is a running embedded broker.
type Kafka struct {
	cluster *kfake.Cluster
}

// StartKafka starts a single-node broker.
func StartKafka(cfg KafkaConfig) (*Kafka, error) {
	cfg.setDefaults()
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("kafka listen address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("kafka listen port %q: %w", portStr, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		// kfake binds 127.0.0.1 itself; honour any other host asked for.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(address)
			ln, err := net.Listen(network, net.JoinHostPort(host, p))
			if err != nil || cfg.Advertise == "" {
				return ln, err
			}
			adv, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
			if err != nil {
				ln.Close()
				return nil, fmt.Errorf("advertised address %q: %w", cfg.Advertise, err)
			}
			return advertised{Listener: ln, addr: adv}, nil
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if len(cfg.Configs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(cfg.Configs))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka: %w", err)
	}
	return &Kafka{cluster: c}, nil
}

// advertised is a listener that reports another address, which kfake then
// advertises to clients.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

// Brokers returns the broker addresses (the advertised ones when set).
func (k *Kafka) Brokers() []string { return k.cluster.ListenAddrs() }

// Cluster gives tests access to the broker, for example to wait for a
// consumer group to settle.
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the broker, saving its state when it has a data dir.
func (k *Kafka) Close() { k.cluster.Close() }
