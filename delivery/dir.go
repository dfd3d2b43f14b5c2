package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// DirSink writes one file per order into a directory, named by the order id.
// The file is written to a temporary name, synced and renamed, so a reader
// never sees half a file, and rewriting an order replaces it with the same
// content.
type DirSink struct {
	Dir string
}

// Deliver writes the document and returns the file's path.
func (s DirSink) Deliver(ctx context.Context, d Document) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create delivery directory: %w", err)
	}
	final := filepath.Join(s.Dir, strconv.FormatInt(d.OrderID, 10)+".json")
	tmp, err := os.CreateTemp(s.Dir, ".tmp-"+strconv.FormatInt(d.OrderID, 10)+"-*")
	if err != nil {
		return "", fmt.Errorf("create temporary delivery file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(d.JSON()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write delivery file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("sync delivery file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("close delivery file: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", fmt.Errorf("rename delivery file: %w", err)
	}
	if dir, err := os.Open(s.Dir); err == nil {
		_ = dir.Sync() // make the rename durable where the platform allows
		dir.Close()
	}
	return final, nil
}
