package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"

	"github.com/keyplane/keyplane/bustest"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
)

func TestBusConformance(t *testing.T) {
	dbURL := postgrestest.NewDatabase(t)
	var b [6]byte
	rand.Read(b[:])
	channel := "keyplane_test_" + hex.EncodeToString(b[:])
	quiet := slog.New(slog.DiscardHandler)
	open := func() *postgres.DB {
		db, err := postgres.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	pubDB, subDB := open(), open()
	admin := postgrestest.Connect(t, postgrestest.AdminURL())
	bustest.Run(t, bustest.Harness{
		Publisher:  pubDB.ChangeBus(channel, quiet),
		Subscriber: subDB.ChangeBus(channel, quiet),
		SendRaw: func(t *testing.T, p string) {
			if _, err := admin.Exec(context.Background(), "SELECT pg_notify($1, $2)", channel, p); err != nil {
				t.Fatal(err)
			}
		},
		BreakSubscription: func(t *testing.T) {
			tag, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE query = 'LISTEN "' || $1 || '"' AND pid <> pg_backend_pid()`, channel)
			if err != nil || tag.RowsAffected() == 0 {
				t.Fatalf("terminate the listener: %v (%d rows)", err, tag.RowsAffected())
			}
		},
	})
}
