package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// MongoConfig configures the embedded MongoDB-wire server.
type MongoConfig struct {
	// Addr is the listen address; "127.0.0.1:0" picks a free loopback port.
	Addr string
	// DataDir holds the SQLite files. It must not contain '#' or '?', which
	// SQLite would read as part of its URI.
	DataDir string
	// Logger receives the server's own logs; nil discards all but errors.
	Logger *slog.Logger
	// CertFile and KeyFile, when set, make the server speak TLS only.
	CertFile, KeyFile string
}

// Mongo is a running embedded MongoDB-wire server.
type Mongo struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
}

// idIndexInterval is how soon a new collection gets its _id index (see
// idIndexer). Until then, finds by _id in it scan, which is cheap while it is
// small.
const idIndexInterval = time.Second

// ferretdb.New writes a package-level variable, so instances are created one
// at a time.
var newFerretMu sync.Mutex

// StartMongo starts FerretDB v1 with its SQLite backend.
func StartMongo(cfg MongoConfig) (*Mongo, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		return nil, errors.New("embedded mongo: a data dir is required")
	}
	if strings.ContainsAny(cfg.DataDir, "#?") {
		return nil, fmt.Errorf("embedded mongo: data dir %q must not contain '#' or '?'", cfg.DataDir)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded mongo data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded mongo data dir: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	// Index what exists before the server opens it, so that a large
	// collection is not indexed while the server writes to it.
	indexer := newIDIndexer(dir, logger)
	if err := indexer.indexAll(context.Background()); err != nil {
		indexer.close()
		return nil, fmt.Errorf("start embedded mongo: %w", err)
	}
	indexer.close()
	newFerretMu.Lock()
	listener := ferretdb.ListenerConfig{TCP: cfg.Addr}
	if cfg.CertFile != "" {
		listener = ferretdb.ListenerConfig{TLS: cfg.Addr, TLSCertFile: cfg.CertFile, TLSKeyFile: cfg.KeyFile}
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: listener,
		Logger:   logger,
		Handler:  "sqlite",
		// WAL with synchronous=NORMAL: a commit survives the crash of this
		// process, and only an OS crash can lose the last ones, which is
		// what MongoDB's own default (a journal flush every 100 ms) offers.
		// FULL would fsync every insert.
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(normal)",
	})
	newFerretMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start embedded mongo: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mongo{cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = f.Run(ctx) // returns when ctx ends; it reports no other error
	}()
	go func() {
		defer wg.Done()
		indexer.run(ctx, idIndexInterval)
	}()
	go func() {
		wg.Wait()
		close(m.done)
	}()
	m.uri = f.MongoDBURI()
	return m, nil
}

// Addr returns the host:port the server listens on.
func (m *Mongo) Addr() string {
	u, err := url.Parse(m.uri)
	if err != nil {
		return ""
	}
	return u.Host
}

// URI returns the connection string of the server.
func (m *Mongo) URI() string { return m.uri }

// Close stops the server and waits until its files are closed.
func (m *Mongo) Close() {
	m.cancel()
	<-m.done
}
