package service_test

import (
	"testing"

	"github.com/keyplane/keyplane/service"
)

// BenchmarkKeyChangeWebhooks is the cost a webhook subscription adds to a
// key change (PATCH of its name): no endpoint, one endpoint that does not
// receive key.updated, and one that does (a message and a delivery written
// in the change's transaction). The store is the run's.
func BenchmarkKeyChangeWebhooks(b *testing.B) {
	for _, tc := range []struct {
		name   string
		events []string // nil: no endpoint
	}{
		{"no-endpoint", nil},
		{"unsubscribed", []string{"invoice.paid"}},
		{"subscribed", []string{"key.updated"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			svc, _, admin := newWebhookService(b)
			acc, err := svc.CreateAccount(admin, service.AccountInput{Name: "Acme"})
			if err != nil {
				b.Fatal(err)
			}
			if tc.events != nil {
				if _, err := svc.CreateWebhook(admin, acc.ID, service.WebhookInput{URL: "https://hooks.example.com/", Events: tc.events}); err != nil {
					b.Fatal(err)
				}
			}
			k, err := svc.CreateKey(admin, acc.ID, service.KeyInput{Name: "k"})
			if err != nil {
				b.Fatal(err)
			}
			up := service.KeyUpdate{Name: service.Optional[string]{Set: true, Value: "renamed"}}
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.UpdateKey(admin, k.ID, up); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
