package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// KafkaConfig says how to reach the brokers and how to consume.
type KafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	// Client is the Watermill Publisher/Subscriber implementation: "franz"
	// (batched, the default) or "watermill-kafka" (the stock one).
	Client string `yaml:"client"`
	// InitialOffset is where a group without committed offsets starts:
	// "oldest" (the default, nothing produced before the first start is
	// skipped) or "latest".
	InitialOffset string `yaml:"initial_offset"`
	// Guarantee is at_least_once (the default) or exactly_once: each hop's
	// outputs and the offsets of the messages they came from commit in one
	// Kafka transaction, and consumers read committed data only.
	Guarantee      string   `yaml:"guarantee"`
	MaxInFlight    int      `yaml:"max_in_flight"`
	CommitInterval Duration `yaml:"commit_interval"`
	SessionTimeout Duration `yaml:"session_timeout"`
	DrainTimeout   Duration `yaml:"drain_timeout"`
	// RebalanceTimeout bounds a rebalance; a member that died holds its
	// group that long (default: drain_timeout + 10s).
	RebalanceTimeout Duration `yaml:"rebalance_timeout"`
	// InstanceID makes the process a static member of its consumer groups:
	// restarted with the same id, it gets its partitions back at once
	// instead of after a rebalance. Unique per process (a pod name).
	InstanceID string `yaml:"instance_id"`
	// InstanceIDFromHostname takes the instance id from the host name, for
	// replicas that have no name of their own to be given: a container's
	// host name is its id, kept across restarts and new when it is
	// recreated (docker compose --scale).
	InstanceIDFromHostname bool     `yaml:"instance_id_from_hostname"`
	Linger                 Duration `yaml:"linger"`
	// Compression of produced batches: none (the default; on a local
	// network it only costs CPU), gzip, snappy, lz4 or zstd.
	Compression     string   `yaml:"compression"`
	DeliveryTimeout Duration `yaml:"delivery_timeout"`
	Replication     int      `yaml:"replication"`
	// MinInsyncReplicas is min.insync.replicas of the topics created: with
	// acks=all, a write counts once this many replicas have it.
	MinInsyncReplicas int        `yaml:"min_insync_replicas"`
	TLS               TLSConfig  `yaml:"tls"`
	SASL              SASLConfig `yaml:"sasl"`
}

// TLSConfig enables TLS towards a server.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates to Kafka. The password comes from the
// environment only (ORDERFLOW_KAFKA_SASL_PASSWORD).
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" secret:"true"`
}

// The delivery guarantees of kafka.guarantee.
const (
	AtLeastOnce = "at_least_once"
	ExactlyOnce = "exactly_once"
)

func (k *KafkaConfig) setDefaults() {
	defStr(&k.Client, "franz")
	defStr(&k.InitialOffset, "oldest")
	defStr(&k.Guarantee, AtLeastOnce)
	defStr(&k.Compression, "none")
	defInt(&k.MaxInFlight, 1024)
	defDur(&k.CommitInterval, 250*time.Millisecond)
	defDur(&k.SessionTimeout, 10*time.Second)
	defDur(&k.DrainTimeout, 20*time.Second)
	defDur(&k.RebalanceTimeout, k.DrainTimeout.Duration+10*time.Second)
	defDur(&k.DeliveryTimeout, 30*time.Second)
	defInt(&k.Replication, 1)
	defInt(&k.MinInsyncReplicas, max(1, k.Replication-1))
}

// Validate checks the section, with keys relative to it.
func (k KafkaConfig) Validate() error { return validateSection(k) }

func (k KafkaConfig) validate(p *problems) {
	if !slices.Contains([]string{"franz", "watermill-kafka"}, k.Client) {
		p.add("client", "%q is not franz or watermill-kafka", k.Client)
	}
	if k.Guarantee != AtLeastOnce && k.Guarantee != ExactlyOnce {
		p.add("guarantee", "%q is not %s or %s", k.Guarantee, AtLeastOnce, ExactlyOnce)
	}
	if k.Guarantee == ExactlyOnce && k.Client != "franz" {
		p.add("guarantee", "exactly_once needs the franz client: watermill-kafka's Sarama consumer commits offsets on its own, apart from any producer, so a handler's outputs and the offset of the message they came from cannot commit in one transaction")
	}
	if k.InitialOffset != "oldest" && k.InitialOffset != "latest" {
		p.add("initial_offset", "%q is not oldest or latest", k.InitialOffset)
	}
	if !slices.Contains([]string{"none", "gzip", "snappy", "lz4", "zstd"}, k.Compression) {
		p.add("compression", "%q is not none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	if k.MaxInFlight < 1 {
		p.add("max_in_flight", "must be at least 1")
	}
	if k.RebalanceTimeout.Duration < k.DrainTimeout.Duration {
		p.add("rebalance_timeout", "must be at least drain_timeout (%v)", k.DrainTimeout.Duration)
	}
	if k.InstanceID != "" && k.Client != "franz" {
		p.add("instance_id", "static membership needs the franz client")
	}
	if k.InstanceIDFromHostname && k.Client != "franz" {
		p.add("instance_id_from_hostname", "static membership needs the franz client")
	}
	if k.InstanceIDFromHostname && k.InstanceID != "" {
		p.add("instance_id_from_hostname", "cannot be set with instance_id (%q): say one id", k.InstanceID)
	}
	if k.InstanceID != "" {
		if err := CheckInstanceID(k.InstanceID); err != nil {
			p.add("instance_id", "%v", err)
		}
	}
	if k.Replication < 1 {
		p.add("replication", "must be at least 1")
	}
	if k.MinInsyncReplicas < 1 || k.MinInsyncReplicas > k.Replication {
		p.add("min_insync_replicas", "must be between 1 and kafka.replication (%d)", k.Replication)
	}
	switch k.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.add("sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if k.SASL.Mechanism != "" && k.SASL.Username == "" {
		p.add("sasl.username", "is required with a SASL mechanism")
	}
}

// maxInstanceID leaves room in Kafka's 249 characters of a group instance id
// for the "-" and the topic name that each subscription appends.
const maxInstanceID = 120

// CheckInstanceID says why id cannot be a static member's instance id:
// Kafka takes the characters of topic names only.
func CheckInstanceID(id string) error {
	if id == "" || len(id) > maxInstanceID {
		return fmt.Errorf("instance id %q must have 1 to %d characters", id, maxInstanceID)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("instance id %q has %q: Kafka takes letters, digits, '.', '_' and '-' only", id, r)
		}
	}
	return nil
}

// ResolveInstanceID returns the instance id the section asks for: the
// configured one, the host name (InstanceIDFromHostname), or "" for dynamic
// membership.
func (k KafkaConfig) ResolveInstanceID(hostname func() (string, error)) (string, error) {
	if !k.InstanceIDFromHostname {
		return k.InstanceID, nil
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("kafka.instance_id_from_hostname: %w", err)
	}
	if err := CheckInstanceID(h); err != nil {
		return "", fmt.Errorf("kafka.instance_id_from_hostname: %w", err)
	}
	return h, nil
}

// Load reads the files the section names into a TLS configuration.
func (c TLSConfig) Load() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in, for test servers
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("no certificate in the CA file")
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
