package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/embedded"
	"github.com/orderflow/orderflow/internal/testcert"
	"github.com/orderflow/orderflow/internal/testenv"
	"github.com/orderflow/orderflow/kafkaclient"
	"github.com/orderflow/orderflow/mongoclient"
)

// TestKafkaSASLAndTLS runs the publisher and subscriber against a broker
// that requires TLS and SASL, for each mechanism, and checks that a wrong
// password is refused and that no password reaches the logs.
func TestKafkaSASLAndTLS(t *testing.T) {
	certs := testcert.New(t, t.TempDir())
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			const password = "s3cret-broker-pw"
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "orderflow", password),
				kfake.TLS(&tls.Config{Certificates: []tls.Certificate{certs.Server}, MinVersion: tls.VersionTLS12}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
			cfg := config.KafkaConfig{
				Brokers: c.ListenAddrs(), Client: "franz", Compression: "none", MaxInFlight: 16,
				CommitInterval: config.D(100 * time.Millisecond), SessionTimeout: config.D(6 * time.Second),
				DrainTimeout: config.D(2 * time.Second), RebalanceTimeout: config.D(10 * time.Second), DeliveryTimeout: config.D(10 * time.Second), Replication: 1,
				TLS:  config.TLSConfig{Enabled: true, CAFile: certs.CA},
				SASL: config.SASLConfig{Mechanism: mech, Username: "orderflow", Password: password},
			}
			ctx := testenv.Context(t, time.Minute)
			k, err := kafkaclient.New(cfg, false, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.EnsureTopics(ctx, map[string]config.TopicConfig{"secure": {Partitions: 2}}); err != nil {
				t.Fatal(err)
			}
			pub, err := k.NewPublisher()
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			if err := pub.Publish("secure", message.NewMessage("m1", []byte("hello"))); err != nil {
				t.Fatal(err)
			}
			sub, err := k.NewSubscriber("secure_group")
			if err != nil {
				t.Fatal(err)
			}
			ch, err := sub.Subscribe(ctx, "secure")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-ch:
				if m.UUID != "m1" || string(m.Payload) != "hello" {
					t.Fatalf("got %s %q", m.UUID, m.Payload)
				}
				m.Ack()
			case <-ctx.Done():
				t.Fatal("no message over TLS and SASL")
			}
			sub.Close()

			bad := cfg
			bad.SASL.Password = "wrong-" + password
			kb, _ := kafkaclient.New(bad, false, log)
			short, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err = kb.EnsureTopics(short, map[string]config.TopicConfig{"secure2": {Partitions: 1}})
			if err == nil {
				t.Fatal("a wrong password was accepted")
			}
			if strings.Contains(err.Error(), password) || strings.Contains(logs.String(), password) {
				t.Fatal("the password appears in an error or a log line")
			}
		})
	}
}

// TestMongoTLS connects to a MongoDB-wire server that speaks TLS only.
func TestMongoTLS(t *testing.T) {
	dir := testenv.TempDir(t)
	certs := testcert.New(t, dir)
	m, err := embedded.StartMongo(embedded.MongoConfig{DataDir: dir + "/data", CertFile: certs.Cert, KeyFile: certs.Key})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := testenv.Context(t, time.Minute)
	plain, err := mongoclient.Connect(config.MongoConfig{URI: "mongodb://" + m.Addr() + "/", Database: "x", Timeout: config.D(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(ctx)
	if err := plain.Client.Ping(ctx, nil); err == nil {
		t.Fatal("a plain connection to a TLS-only server succeeded")
	}
	secure, err := mongoclient.Connect(config.MongoConfig{URI: "mongodb://" + m.Addr() + "/", Database: "x", Timeout: config.D(5 * time.Second),
		TLS: config.TLSConfig{Enabled: true, CAFile: certs.CA}})
	if err != nil {
		t.Fatal(err)
	}
	defer secure.Close(ctx)
	if err := secure.Client.Ping(ctx, nil); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
}

// TestListenersAreLoopbackByDefault checks every listener the project opens
// by default: the HTTP listener of the shipped configuration and the
// embedded servers.
func TestListenersAreLoopbackByDefault(t *testing.T) {
	cfg, err := config.Load([]byte(testenv.Shipped(t)), "orderflow.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if !net.ParseIP(host).IsLoopback() {
		t.Fatalf("http.listen defaults to %s", cfg.HTTP.Listen)
	}
	k, err := embedded.StartKafka(embedded.KafkaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	m := testenv.StartMongo(t, testenv.TempDir(t))
	for _, addr := range []string{k.Brokers()[0], m.Addr()} {
		host, _, _ := net.SplitHostPort(addr)
		if !net.ParseIP(host).IsLoopback() {
			t.Fatalf("embedded server listens on %s", addr)
		}
	}
}
