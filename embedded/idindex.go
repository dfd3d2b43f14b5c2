package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself registers as "sqlite"
)

// FerretDB v1 filters a document by _id with the SQL expression
// `_ferretdb_sjson->'$._id' = ?`, but the unique index it creates on every
// collection is on `_ferretdb_sjson->"_id"`. SQLite uses an index only for
// the very expression it was built on, so out of the box every find, update
// and delete by _id scans the whole table (31 ms at 20k documents, 1.5 s at
// 1M). An index on the expression FerretDB queries with makes them 0.15 ms,
// independent of size (measured in ../shared/notes/platform.md). FerretDB
// does not know of this index: it only speeds up its queries, and it is
// dropped with its table.
//
// idIndexer creates that index on every collection table of every database
// file in the data dir: once before the server starts, and then every
// interval for the collections created since.
type idIndexer struct {
	dir    string
	logger *slog.Logger

	mu   sync.Mutex
	dbs  map[string]*sql.DB // by file path
	done map[string]bool    // "file\x00table" already indexed
}

// idIndexSuffix names the extra index after its table.
const idIndexSuffix = "_orderflow_id"

func newIDIndexer(dir string, logger *slog.Logger) *idIndexer {
	return &idIndexer{dir: dir, logger: logger, dbs: map[string]*sql.DB{}, done: map[string]bool{}}
}

// run indexes new tables every interval until ctx ends, then closes its
// connections.
func (x *idIndexer) run(ctx context.Context, interval time.Duration) {
	defer x.close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.indexAll(ctx); err != nil && ctx.Err() == nil {
				x.logger.Warn("embedded mongo: indexing _id failed; will retry", "error", err)
			}
		}
	}
}

// indexAll creates the missing _id indexes in every database file.
func (x *idIndexer) indexAll(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		return fmt.Errorf("list database files: %w", err)
	}
	for _, f := range files {
		if err := x.indexFile(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

func (x *idIndexer) indexFile(ctx context.Context, file string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	db := x.dbs[file]
	if db == nil {
		if _, err := os.Stat(file); err != nil {
			return nil // dropped since the glob
		}
		var err error
		// WAL and a busy timeout, as FerretDB opens it: the index is made
		// while the server writes.
		db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(wal)")
		if err != nil {
			return fmt.Errorf("open %s: %w", filepath.Base(file), err)
		}
		db.SetMaxOpenConns(1)
		x.dbs[file] = db
	}
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM "_ferretdb_collections"`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // a database being created
		}
		return fmt.Errorf("list collections of %s: %w", filepath.Base(file), err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("list collections of %s: %w", filepath.Base(file), err)
		}
		if !x.done[file+"\x00"+t] {
			tables = append(tables, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list collections of %s: %w", filepath.Base(file), err)
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			return fmt.Errorf("index _id of %s in %s: %w", t, filepath.Base(file), err)
		}
		x.done[file+"\x00"+t] = true
	}
	return nil
}

func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for f, db := range x.dbs {
		_ = db.Close()
		delete(x.dbs, f)
	}
}
