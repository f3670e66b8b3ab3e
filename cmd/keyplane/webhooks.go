package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/webhooks"
	"github.com/spf13/pflag"
)

// webhookOptions are serve's webhook flags.
type webhookOptions struct {
	secretsKeyFile string
	allowPrivate   bool
	schedule       scheduleFlag
	timeout        time.Duration
	pollInterval   time.Duration
	retention      time.Duration
}

func (o *webhookOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.secretsKeyFile, "secrets-key-file", "", "file holding the key (base64 of 32 bytes) that encrypts webhook secrets; default beside a SQLite database (made, 0600, on first start); required with PostgreSQL for webhooks, the same file on every instance ($KEYPLANE_SECRETS_KEY_FILE)")
	f.BoolVar(&o.allowPrivate, "webhooks-allow-private", false, "let webhook endpoints use http and private, loopback and link-local addresses (for development and tests) ($KEYPLANE_WEBHOOKS_ALLOW_PRIVATE)")
	o.schedule.delays = webhooks.DefaultSchedule
	f.Var(&o.schedule, "webhook-retry-schedule", "waits before each retry of a failed webhook delivery ($KEYPLANE_WEBHOOK_RETRY_SCHEDULE)")
	f.DurationVar(&o.timeout, "webhook-timeout", webhooks.RequestTimeout, "how long one webhook delivery may take ($KEYPLANE_WEBHOOK_TIMEOUT)")
	f.DurationVar(&o.pollInterval, "webhook-poll-interval", webhooks.DefaultPollInterval, "how often the outbox is read for due deliveries; changes on this instance go out at once ($KEYPLANE_WEBHOOK_POLL_INTERVAL)")
	f.DurationVar(&o.retention, "webhook-retention", webhooks.DefaultRetention, "how long webhook messages and their attempts are kept once delivered or failed ($KEYPLANE_WEBHOOK_RETENTION)")
}

// secretsKey loads the secrets key: from --secrets-key-file, else beside a
// SQLite database (made on first start). With PostgreSQL and no file there
// is none: webhooks are off on this instance, and said so.
func (o *webhookOptions) secretsKey(database string, log *slog.Logger) (keyplane.SecretSealer, error) {
	path, create := o.secretsKeyFile, false
	if path == "" {
		if isPostgres(database) {
			log.Warn("webhooks are off: with PostgreSQL, give every instance the same --secrets-key-file")
			return nil, nil
		}
		path, create = strings.TrimPrefix(database, "sqlite://")+".secrets-key", true
	}
	key, created, err := webhooks.LoadKeyFile(path, create)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("made a new secrets key for webhook secrets; back it up with the database", "path", path)
	}
	return webhooks.NewSecretBox(key)
}

// startWebhooks runs the dispatcher and the scheduler until ctx ends; the
// returned func waits for them (and the deliveries in flight) to stop.
func (o *webhookOptions) start(ctx context.Context, store keyplane.Store, secrets keyplane.SecretSealer, dispatcher *webhooks.Dispatcher, log *slog.Logger) func() {
	var wg sync.WaitGroup
	if secrets == nil {
		return wg.Wait
	}
	scheduler := webhooks.NewScheduler(webhooks.SchedulerConfig{Store: store, Retention: o.retention, Logger: log, Raised: dispatcher.Wake})
	wg.Go(func() { dispatcher.Run(ctx) })
	wg.Go(func() { scheduler.Run(ctx) })
	return wg.Wait
}

func (o *webhookOptions) dispatcher(store keyplane.Store, secrets keyplane.SecretSealer, log *slog.Logger) *webhooks.Dispatcher {
	return webhooks.NewDispatcher(webhooks.Config{Store: store, Secrets: secrets, AllowPrivate: o.allowPrivate, Timeout: o.timeout,
		Schedule: o.schedule.delays, PollInterval: o.pollInterval, Logger: log})
}

// scheduleFlag is --webhook-retry-schedule: durations separated by commas.
type scheduleFlag struct{ delays []time.Duration }

func (f *scheduleFlag) String() string {
	parts := make([]string, len(f.delays))
	for i, d := range f.delays {
		parts[i] = shortDuration(d)
	}
	return strings.Join(parts, ",")
}

func (f *scheduleFlag) Type() string { return "durations" }

func (f *scheduleFlag) Set(v string) error {
	var delays []time.Duration
	for part := range strings.SplitSeq(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want positive durations separated by commas, e.g. 5s,5m,30m,2h", part)
		}
		delays = append(delays, d)
	}
	if len(delays) > 20 {
		return fmt.Errorf("at most 20 retries")
	}
	f.delays = delays
	return nil
}

// shortDuration prints 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
