package embedded

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestIDIndexServesFindsByID checks that a collection created while the
// server runs gets the _id index, and that SQLite plans FerretDB's own _id
// query with it instead of a scan.
func TestIDIndexServesFindsByID(t *testing.T) {
	dir, err := os.MkdirTemp("", "orderflow-idindex-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := StartMongo(MongoConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("idx").Collection("things")
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "_id", Value: "b"}}}); err != nil {
		t.Fatal(err)
	}
	// plan opens the file anew each time: a connection may keep the
	// schema it first read.
	plan := func() string {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "idx.sqlite")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var table string
		if err := db.QueryRowContext(ctx, `SELECT table_name FROM "_ferretdb_collections" WHERE name = 'things'`).Scan(&table); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "`+table+`" WHERE _ferretdb_sjson->'$._id' = ?`, `"a"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			out = append(out, detail)
		}
		return strings.Join(out, "; ")
	}
	deadline := time.Now().Add(5 * idIndexInterval)
	for p := plan(); !strings.Contains(p, idIndexSuffix); p = plan() {
		if time.Now().After(deadline) {
			t.Fatalf("FerretDB's _id query is planned as %q, without the index *%s", p, idIndexSuffix)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&got); err != nil || got["_id"] != "b" {
		t.Fatalf("find by _id: %v %v", got, err)
	}
}
