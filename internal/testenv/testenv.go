// Package testenv gives integration tests real servers: a Kafka-protocol
// broker and a MongoDB-wire server, started in-process on random loopback
// ports for each test. Set ORDERFLOW_TEST_KAFKA_BROKERS (comma-separated) and
// ORDERFLOW_TEST_MONGODB_URI to run the same tests against external servers;
// each test then uses its own database and topic names.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/embedded"
)

// Unique returns a short random suffix for database and topic names.
func Unique() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// MongoURI returns the URI of a MongoDB-wire server for t.
func MongoURI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv("ORDERFLOW_TEST_MONGODB_URI"); uri != "" {
		return uri
	}
	m := StartMongo(t, TempDir(t))
	return m.URI()
}

// StartMongo starts an embedded server on dir, stopped when t ends.
func StartMongo(t testing.TB, dir string) *embedded.Mongo {
	t.Helper()
	m, err := embedded.StartMongo(embedded.MongoConfig{DataDir: dir})
	if err != nil {
		t.Fatalf("start embedded mongo: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// TempDir returns a directory removed when t ends. Unlike t.TempDir its name
// has no '#', which the SQLite URI of the embedded server cannot take.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "orderflow-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Database returns a connected client's handle on a database of its own for t.
// The database is dropped when t ends.
func Database(t testing.TB) *mongo.Database {
	t.Helper()
	return DatabaseAt(t, MongoURI(t), "orderflow_test_"+Unique())
}

// DatabaseAt connects to uri and returns the named database.
func DatabaseAt(t testing.TB, uri, name string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect to mongo: %v", err)
	}
	db := client.Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	return db
}

// Brokers returns the addresses of a Kafka-protocol broker for t, and the
// embedded broker when one was started (nil for an external one).
func Brokers(t testing.TB) ([]string, *embedded.Kafka) {
	t.Helper()
	if b := os.Getenv("ORDERFLOW_TEST_KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ","), nil
	}
	k := StartKafka(t, embedded.KafkaConfig{Partitions: 4})
	return k.Brokers(), k
}

// StartKafka starts an embedded broker, stopped when t ends.
func StartKafka(t testing.TB, cfg embedded.KafkaConfig) *embedded.Kafka {
	t.Helper()
	k, err := embedded.StartKafka(cfg)
	if err != nil {
		t.Fatalf("start embedded kafka: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

// Context returns a context that ends when t ends or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Shipped returns the shipped orderflow.yaml, for tests of packages one
// directory below the module root.
func Shipped(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile("../orderflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// GetJSON decodes the JSON answer of a GET of url into v, failing t on any
// status but 200.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
