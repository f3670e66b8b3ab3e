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
