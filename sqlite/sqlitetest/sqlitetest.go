package sqlitetest

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	sqlitedriver "modernc.org/sqlite"
)

var (
	hookOnce sync.Once
	mu       sync.Mutex
	full     = map[string]bool{} // escaped paths whose new connections find the disk full
)

// FillDiskOnOpen makes every connection opened from now on to the SQLite
// file at path unable to grow the file (PRAGMA max_page_count set to its
// current size), so a write that needs a new page fails with SQLITE_FULL,
// as on a full disk. Open the store after calling it; it ends with the test.
func FillDiskOnOpen(t testing.TB, path string) {
	t.Helper()
	hookOnce.Do(func() { sqlitedriver.RegisterConnectionHook(capSize) })
	key := (&url.URL{Path: path}).EscapedPath()
	mu.Lock()
	full[key] = true
	mu.Unlock()
	t.Cleanup(func() {
		mu.Lock()
		delete(full, key)
		mu.Unlock()
	})
}

func capSize(conn sqlitedriver.ExecQuerierContext, dsn string) error {
	path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	mu.Lock()
	on := full[path]
	mu.Unlock()
	if !on {
		return nil
	}
	ctx := context.Background()
	rows, err := conn.QueryContext(ctx, "PRAGMA page_count", nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil && err != io.EOF {
		return err
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", v[0]), nil)
	return err
}
