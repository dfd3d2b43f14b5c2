package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/failure"
)

// DirSink writes one file per order into a directory, named by the order id.
// The file is written to a temporary name, synced and renamed, so a reader
// never sees half a file. A redelivered order whose file is already there
// with the same content is not written again.
type DirSink struct {
	Dir string
}

// Deliver writes the document and returns the file's path, followed by
// " (already there)" when an identical file was found. A file that is there
// with other content is never overwritten: that is a conflict (a reused
// order id), a permanent error.
func (s DirSink) Deliver(ctx context.Context, d Document) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("create delivery directory: %w", err)
	}
	name := d.Name
	if name == "" {
		name = strconv.FormatInt(d.OrderID, 10)
	}
	final := filepath.Join(s.Dir, name+".json")
	content := d.JSON()
	if old, err := os.ReadFile(final); err == nil {
		return existing(final, old, content)
	}
	tmp, err := os.CreateTemp(s.Dir, ".tmp-"+name+"-*")
	if err != nil {
		return "", fmt.Errorf("create temporary delivery file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(content); err != nil {
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
	// A hard link never replaces a file another writer put there meanwhile;
	// where links are not supported, a rename does the same job.
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			old, rerr := os.ReadFile(final)
			if rerr != nil {
				return "", fmt.Errorf("read delivery file: %w", rerr)
			}
			return existing(final, old, content)
		}
		if err := os.Rename(tmp.Name(), final); err != nil {
			return "", fmt.Errorf("rename delivery file: %w", err)
		}
	}
	if dir, err := os.Open(s.Dir); err == nil {
		_ = dir.Sync() // make the rename durable where the platform allows
		dir.Close()
	}
	return final, nil
}

// existing answers for a delivery whose file is there already.
func existing(path string, old, content []byte) (string, error) {
	if bytes.Equal(old, content) {
		return path + " (already there)", nil
	}
	return "", failure.Permanent(failure.Conflict,
		fmt.Errorf("%s is there with other content (%d bytes, this delivery %d): the order id was delivered before with other lines; the file is left as it is", path, len(old), len(content)))
}

// staleTemp is how old a temporary file must be before CleanTemp removes it:
// older than any write in progress, so that routers sharing the directory
// never remove each other's.
const staleTemp = 10 * time.Minute

// CleanTemp removes the temporary files a crashed writer left in the
// directory, and returns how many it removed. A missing directory has none.
func (s DirSink) CleanTemp(now time.Time) (int, error) {
	names, err := filepath.Glob(filepath.Join(s.Dir, ".tmp-*"))
	if err != nil {
		return 0, fmt.Errorf("list temporary delivery files: %w", err)
	}
	removed := 0
	for _, name := range names {
		fi, err := os.Stat(name)
		if err != nil || now.Sub(fi.ModTime()) < staleTemp {
			continue
		}
		if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("remove temporary delivery file: %w", err)
		}
		removed++
	}
	return removed, nil
}
