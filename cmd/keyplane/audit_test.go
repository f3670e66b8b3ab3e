package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/sqlite"
)

// TestAuditVerifyExitCodes: 0 for an intact log, 1 naming the edited event
// after a row is changed in the database, 2 when the log cannot be read.
func TestAuditVerifyExitCodes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "audit.db")
	store, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	var events []*keyplane.AuditEvent
	for i, chain := range []string{"acc_1", "acc_1", "", "acc_1"} {
		events = append(events, &keyplane.AuditEvent{ID: "evt_" + string(rune('a'+i)), Time: time.Now(), Type: keyplane.AuditKeyUpdated,
			Actor: keyplane.AuditActor{Kind: "system", ID: "system"}, AccountID: chain, Details: json.RawMessage(`{"n":1}`)})
	}
	if err := store.AppendAudit(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	store.Close()

	code, out, errOut := runCLI(t, "audit", "verify", "--database", db)
	if code != 0 || !strings.Contains(out, "intact: 2 chains, 4 events") {
		t.Fatalf("intact log: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE audit_events SET details = '{"n":2}' WHERE id = 'evt_b'`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "audit", "verify", "--database", db)
	if code != 1 || !strings.Contains(out, "event evt_b (seq 2): hash mismatch") || !strings.Contains(errOut, "first bad event evt_b") {
		t.Fatalf("edited log: exit %d, stdout %q, stderr %q; want 1 naming evt_b", code, out, errOut)
	}

	code, _, errOut = runCLI(t, "audit", "verify", "--database", "postgres://root@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if code != 2 || errOut == "" {
		t.Fatalf("unreachable database: exit %d, stderr %q; want 2", code, errOut)
	}
}

// TestAuditExport: token creation through the CLI is recorded, and export
// writes it as one JSON object a line, filtered like the API.
func TestAuditExport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "export.db")
	if code, _, errOut := runCLI(t, "migrate", "--database", db); code != 0 {
		t.Fatal(errOut)
	}
	for _, name := range []string{"ci", "deploy"} {
		if code, _, errOut := runCLI(t, "token", "create", "--name", name, "--role", "verify", "--database", db); code != 0 {
			t.Fatalf("token create: %s", errOut)
		}
	}
	code, out, errOut := runCLI(t, "audit", "export", "--database", db, "--type", "token.created", "--actor", "system")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("export wrote %d lines, want 2: %q", len(lines), out)
	}
	var names []string
	for _, line := range lines {
		var ev struct {
			Type    string
			Seq     int64
			Hash    string
			Actor   struct{ Kind, ID string }
			Details struct{ Name string }
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ev.Type != keyplane.AuditTokenCreated || ev.Actor.Kind != "system" || len(ev.Hash) != 64 {
			t.Fatalf("event %+v", ev)
		}
		names = append(names, ev.Details.Name)
	}
	if strings.Join(names, " ") != "deploy ci" {
		t.Fatalf("exported %v, want newest first", names)
	}
	if code, out, _ := runCLI(t, "audit", "export", "--database", db, "--type", "key.created"); code != 0 || out != "" {
		t.Fatalf("filter matching nothing: exit %d, %q", code, out)
	}
	if code, _, errOut := runCLI(t, "audit", "export", "--database", db, "--from", "yesterday"); code == 0 || !strings.Contains(errOut, "--from") {
		t.Fatalf("bad --from: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCLI(t, "audit", "verify", "--database", db); code != 0 || !strings.Contains(out, "intact: 1 chains, 2 events") {
		t.Fatalf("verify after the CLI's changes: exit %d %q", code, out)
	}
}
