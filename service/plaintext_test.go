package service_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/sqlite"
)

// The plaintext of a key exists only in the response that creates it: after
// creating, rolling and verifying keys, no byte sequence of any plaintext (or
// of its secret part alone) is in the SQLite file, its WAL or its shared memory.
func TestPlaintextNeverStored(t *testing.T) {
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "keyplane.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(store, service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	acc, err := svc.CreateAccount(ctx, service.AccountInput{Name: "Acme", AllowedScopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for range 5 {
		k, err := svc.CreateKey(ctx, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"a:b"}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := svc.RollKey(ctx, k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{k.Plaintext, r.Key.Plaintext} {
			if res, err := svc.Verify(ctx, keyplane.VerifyRequest{Key: p, Scope: "a:b"}); err != nil || !res.Valid {
				t.Fatalf("verify: %v %+v", err, res)
			}
			secrets = append(secrets, p, p[len(p)-36:len(p)-6])
		}
	}
	tok, err := svc.CreateToken(ctx, service.TokenInput{Name: "t", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.Plaintext, tok.Plaintext[4:34])

	files, _ := filepath.Glob(filepath.Join(dir, "keyplane.db*"))
	scan := func(when string) {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Fatalf("%s: %s contains a plaintext secret", when, filepath.Base(f))
				}
			}
		}
	}
	scan("while open")
	store.Close()
	files, _ = filepath.Glob(filepath.Join(dir, "keyplane.db*"))
	if len(files) == 0 {
		t.Fatal("no database files to scan")
	}
	scan("after close")
}
