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

// reset-password prints a single-use link, alone on stdout, that sets a new
// password on the portal once.
func TestMemberResetPassword(t *testing.T) {
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
	sys := keyplane.NewContextWithActor(ctx, service.SystemActor)
	acc, err := svc.CreateAccount(sys, service.AccountInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateMember(sys, acc.ID, service.MemberInput{Email: "owner@example.com", Role: keyplane.MemberOwner, Password: "the lost password"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "member", "reset-password", "--account", acc.ID, "--email", "Owner@Example.com", "--portal-url", "https://keys.example.com/", "--database", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	link := strings.TrimSuffix(out, "\n")
	const prefix = "https://keys.example.com/portal/reset?token="
	if !strings.HasPrefix(link, prefix) || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "owner@example.com") {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
	token := strings.TrimPrefix(link, prefix)
	if _, err := svc.ResetPassword(ctx, token, "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SignIn(ctx, "owner@example.com", "a brand new password", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("sign in with the new password: %v", err)
	}
	if _, err := svc.ResetPassword(ctx, token, "and again a password"); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("second use: %v", err)
	}
	for _, args := range [][]string{
		{"member", "reset-password", "--account", acc.ID, "--email", "owner@example.com", "--database", db},
		{"member", "reset-password", "--account", acc.ID, "--email", "nobody@example.com", "--portal-url", "https://keys.example.com", "--database", db},
		{"member", "reset-password", "--account", "acc_01jzzzzzzzzzzzzzzzzzzzzzzz", "--email", "owner@example.com", "--portal-url", "https://keys.example.com", "--database", db},
	} {
		if code, out, errOut := runCLI(t, args...); code == 0 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}
