package keyplane

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAuditHashCoversEveryField changes each field in turn: every change
// must change the hash, or an edit of that column would go unseen.
func TestAuditHashCoversEveryField(t *testing.T) {
	ev := AuditEvent{ID: "evt_1", Time: time.Unix(1, 0), Type: AuditKeyCreated, Actor: AuditActor{Kind: "token", ID: "tok_1"},
		AccountID: "acc_1", KeyID: "key_1", SourceIP: "192.0.2.1", UserAgent: "curl", RequestID: "r1",
		Details: json.RawMessage(`{"a":1}`), Seq: 3, PrevHash: "ab"}
	base := ev.ComputeHash()
	for name, edit := range map[string]func(*AuditEvent){
		"id":         func(e *AuditEvent) { e.ID = "evt_2" },
		"time":       func(e *AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		"type":       func(e *AuditEvent) { e.Type = AuditKeyRevoked },
		"actor kind": func(e *AuditEvent) { e.Actor.Kind = "member" },
		"actor id":   func(e *AuditEvent) { e.Actor.ID = "tok_2" },
		"account":    func(e *AuditEvent) { e.AccountID = "acc_2" },
		"key":        func(e *AuditEvent) { e.KeyID = "" },
		"ip":         func(e *AuditEvent) { e.SourceIP = "192.0.2.2" },
		"user agent": func(e *AuditEvent) { e.UserAgent = "curl/8" },
		"request id": func(e *AuditEvent) { e.RequestID = "r2" },
		"details":    func(e *AuditEvent) { e.Details = json.RawMessage(`{"a":2}`) },
		"seq":        func(e *AuditEvent) { e.Seq = 4 },
		"prev hash":  func(e *AuditEvent) { e.PrevHash = "cd" },
		// Length prefixes: moving a character between fields is a change.
		"boundary": func(e *AuditEvent) { e.UserAgent, e.RequestID = "curlr", "1" },
	} {
		changed := ev
		edit(&changed)
		if changed.ComputeHash() == base {
			t.Errorf("changing the %s leaves the hash unchanged", name)
		}
	}
}
