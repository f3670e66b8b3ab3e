package main

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/sqlite"
)

func TestMemberCreate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()
	store, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(store, service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := svc.CreateAccount(keyplane.NewContextWithActor(ctx, service.SystemActor), service.AccountInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}

	// Generated: the password alone on stdout, once.
	code, out, errOut := runCLI(t, "member", "create", "--account", acc.ID, "--email", "Owner@Example.com", "--role", "owner", "--database", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	generated := strings.TrimSuffix(out, "\n")
	if len(generated) != 20 || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "owner@example.com") {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
	if _, err := svc.SignIn(ctx, "owner@example.com", generated, netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("sign in with the printed password: %v", err)
	}

	// From stdin: nothing on stdout.
	cmd := newRootCommand(new(bytes.Buffer), new(bytes.Buffer))
	var stdout bytes.Buffer
	cmd.SetOut(&stdout)
	cmd.SetIn(strings.NewReader("a chosen password\n"))
	cmd.SetArgs([]string{"member", "create", "--account", acc.ID, "--email", "dev@example.com", "--role", "developer", "--password-stdin", "--database", db})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q, want nothing", stdout.String())
	}
	if _, err := svc.SignIn(ctx, "dev@example.com", "a chosen password", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("sign in with the stdin password: %v", err)
	}

	for _, args := range [][]string{
		{"member", "create", "--account", acc.ID, "--email", "owner@example.com", "--role", "owner", "--database", db},
		{"member", "create", "--account", acc.ID, "--email", "x@example.com", "--role", "boss", "--database", db},
		{"member", "create", "--account", "acc_01jzzzzzzzzzzzzzzzzzzzzzzz", "--email", "y@example.com", "--role", "viewer", "--database", db},
		{"member", "create", "--email", "z@example.com", "--role", "viewer", "--database", db},
	} {
		if code, out, errOut := runCLI(t, args...); code == 0 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
