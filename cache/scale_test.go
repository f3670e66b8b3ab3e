package cache_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/sqlite"
)

// scaleFixture is a SQLite store holding n keys, built once per size.
type scaleFixture struct {
	store   *sqlite.DB
	svc     *service.Service
	cache   *cache.Cache
	sample  []string // plaintexts of keys spread over the store
	hashes  [][32]byte
	fillDur time.Duration
}

var (
	scaleMu       sync.Mutex
	scaleFixtures = map[int]*scaleFixture{}
	benchDirs     []string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range benchDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// BenchmarkScale compares 1 k and 1 M keys in the store: the hit path (a
// cached verification, cycling over the same 1,000 keys, in a cache that
// holds every key of the store) should not change; the cold path (a store
// lookup of a random key) should stay within 2×. Building the 1 M store
// takes about a minute.
//
//	go test -run '^$' -bench Scale -benchtime 2s ./cache/
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			f := scaleStore(b, n)
			ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
			b.Run("hit", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if res, _ := f.svc.Verify(ctx, keyplane.VerifyRequest{Key: f.sample[i%len(f.sample)], Scope: "data:read"}); !res.Valid {
						b.Fatal(res.Code)
					}
					i++
				}
			})
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				r := rand.New(rand.NewPCG(1, 2))
				for b.Loop() {
					if _, err := f.store.VerifyRecord(ctx, f.hashes[r.IntN(len(f.hashes))]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func scaleStore(b *testing.B, n int) *scaleFixture {
	scaleMu.Lock()
	defer scaleMu.Unlock()
	if f := scaleFixtures[n]; f != nil {
		return f
	}
	start := time.Now()
	dir, err := mkdirTemp()
	if err != nil {
		b.Fatal(err)
	}
	benchDirs = append(benchDirs, dir)
	path := filepath.Join(dir, "scale.db")
	ctx := context.Background()
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	sys := keyplane.NewContextWithActor(ctx, service.SystemActor)
	plain, _ := service.New(store, service.Config{})
	acc, err := plain.CreateAccount(sys, service.AccountInput{Name: "bulk", AllowedScopes: []string{"data:*"}})
	if err != nil {
		b.Fatal(err)
	}
	// Bulk insert in one transaction on a second connection: the service's
	// one-key-per-transaction path would take an hour for a million keys.
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	tx, err := raw.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare(`INSERT INTO keys (id, account_id, name, environment, hash, hint, scopes, allowed_cidrs, metadata, enabled, created_at, updated_at)
		VALUES (?, ?, 'bulk', 'live', ?, ?, '["data:read"]', '[]', '{"tier":"bulk"}', 1, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	f := &scaleFixture{store: store}
	every := max(n/1_000, 1) // the same 1,000 keys are verified at every size
	now := time.Now().UnixMicro()
	for i := range n {
		key := apikey.New("kp", "live")
		hash := apikey.Hash(key)
		if _, err := stmt.Exec(fmt.Sprintf("key_bulk%09d", i), acc.ID, hash[:], apikey.Hint(key), now, now); err != nil {
			b.Fatal(err)
		}
		if i%every == 0 {
			f.sample = append(f.sample, key)
			f.hashes = append(f.hashes, hash)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	f.cache, err = cache.New(store, cache.Config{MaxEntries: 1_100_000, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	clock := coarseclock.New(time.Millisecond)
	f.svc, _ = service.New(store, service.Config{Records: f.cache, Cache: f.cache, Now: clock.Now})
	// Warm the cache with every key of the sample, then fill it to n with
	// the rest, so the hit path runs against a cache of the store's size.
	for _, h := range f.hashes {
		if _, err := f.cache.VerifyRecord(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	rows, err := raw.Query(`SELECT hash FROM keys`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var h []byte
		rows.Scan(&h)
		f.cache.VerifyRecord(ctx, [32]byte(h))
	}
	rows.Close()
	f.fillDur = time.Since(start)
	b.Logf("built a store of %d keys and cached %d in %v", n, f.cache.Len(), f.fillDur.Round(time.Second))
	scaleFixtures[n] = f
	return f
}
