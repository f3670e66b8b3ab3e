package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/grpcapi"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/outage"
	"github.com/keyplane/keyplane/portal"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/redis"
	"github.com/keyplane/keyplane/secretscan"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/sqlite"
	"github.com/keyplane/keyplane/usage"
	"github.com/keyplane/keyplane/verifyfailures"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// serveOptions are the flags of serve.
type serveOptions struct {
	addr, database, redisURL, channel, prefix, logLevel, logFormat string
	shutdownTimeout, cacheTTL, cacheServeStale, quotaFlushInterval time.Duration
	cacheSize                                                      int
	rateLimitFailClosed                                            bool
	gate                                                           gateOptions
	usageFlushInterval                                             time.Duration
	usageRetention                                                 retentionFlag
	portal, portalSignup, portalCookieSecure                       bool
	portalURL                                                      string
	portalSessionIdle, portalSessionMax                            time.Duration
	firstTokenFile                                                 string
	webhooks                                                       webhookOptions
	leakAction, githubScanningKeysURL                              string
}

func newServeCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), o.logLevel, o.logFormat)
			if err != nil {
				return err
			}
			if _, fromEnv := os.LookupEnv(envNames["portal-cookie-secure"]); !cmd.Flags().Changed("portal-cookie-secure") && !fromEnv {
				o.portalCookieSecure = !loopback(o.apiAddr())
			}
			return serve(cmd.Context(), o, cmd.OutOrStdout(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on ($KEYPLANE_ADDR)")
	addDatabaseFlag(cmd, &o.database)
	f.StringVar(&o.redisURL, "redis", "", "a redis:// URL: cluster mode, changes reach every instance through Redis ($KEYPLANE_REDIS_URL)")
	f.StringVar(&o.channel, "change-channel", "", "the Redis channel or PostgreSQL NOTIFY channel instances exchange changes on; set it to run several deployments on one server ($KEYPLANE_CHANGE_CHANNEL)")
	f.StringVar(&o.prefix, "key-prefix", "kp", "prefix of the keys this deployment issues ($KEYPLANE_KEY_PREFIX)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error ($KEYPLANE_LOG_LEVEL)")
	f.StringVar(&o.logFormat, "log-format", "text", "text or json ($KEYPLANE_LOG_FORMAT)")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on SIGTERM ($KEYPLANE_SHUTDOWN_TIMEOUT)")
	f.DurationVar(&o.cacheTTL, "cache-ttl", cache.DefaultTTL, "the longest a cached key goes without a reload; bounds a change whose notification was lost ($KEYPLANE_CACHE_TTL)")
	f.DurationVar(&o.cacheServeStale, "cache-serve-stale", cache.DefaultServeStale, "how long cached keys keep verifying while the database is down ($KEYPLANE_CACHE_SERVE_STALE)")
	f.DurationVar(&o.quotaFlushInterval, "quota-flush-interval", quota.DefaultFlushInterval, "how often quota usage is written to the database; instances may overshoot a quota by what they admit in one interval ($KEYPLANE_QUOTA_FLUSH_INTERVAL)")
	f.BoolVar(&o.rateLimitFailClosed, "rate-limit-fail-closed", false, "in cluster mode, refuse verifications (503) while Redis is unreachable instead of limiting each instance on its own ($KEYPLANE_RATE_LIMIT_FAIL_CLOSED)")
	f.DurationVar(&o.usageFlushInterval, "usage-flush-interval", usage.DefaultFlushInterval, "how often usage counts are written to the database; a crash loses at most one interval ($KEYPLANE_USAGE_FLUSH_INTERVAL)")
	o.usageRetention.Retention = usage.DefaultRetention
	f.Var(&o.usageRetention, "usage-retention", "how long usage is kept per granularity, e.g. minute=7d,hour=90d,day=730d ($KEYPLANE_USAGE_RETENTION)")
	f.IntVar(&o.cacheSize, "cache-size", cache.DefaultMaxEntries, "the most keys kept in memory, about 1 KB each ($KEYPLANE_CACHE_SIZE)")
	o.gate.addFlags(f)
	f.BoolVar(&o.portal, "portal", true, "serve the developer portal at /portal/ and accept its session cookie on the API ($KEYPLANE_PORTAL)")
	f.BoolVar(&o.portalSignup, "portal-signup", false, "let anyone create an account (and become its owner) from the portal ($KEYPLANE_PORTAL_SIGNUP)")
	f.BoolVar(&o.portalCookieSecure, "portal-cookie-secure", true, "send the session cookie over HTTPS only (__Host- prefix); default true, except when the API (--addr, or --admin-addr in gateway mode) listens on a loopback address ($KEYPLANE_PORTAL_COOKIE_SECURE)")
	f.StringVar(&o.firstTokenFile, "first-token-file", "", "where the first admin token goes on an empty database; default: the terminal when stdout is one, else DATABASE.first-admin-token (mode 0600) beside a SQLite file, or ./keyplane-first-admin-token ($KEYPLANE_FIRST_TOKEN_FILE)")
	f.StringVar(&o.leakAction, "leak-action", string(keyplane.LeakRevoke), "what happens to a key reported as leaked (GitHub secret scanning, POST /v1/keys/leaked): revoke, disable or notify ($KEYPLANE_LEAK_ACTION)")
	f.StringVar(&o.githubScanningKeysURL, "github-scanning-keys-url", secretscan.DefaultKeysURL, "where GitHub's secret scanning signing keys are fetched from; empty turns POST /v1/secret-scanning/github off ($KEYPLANE_GITHUB_SCANNING_KEYS_URL)")
	f.StringVar(&o.portalURL, "portal-url", "", "the portal's public base URL, e.g. https://keys.example.com, for invite links; default: from each request ($KEYPLANE_PORTAL_URL)")
	f.DurationVar(&o.portalSessionIdle, "portal-session-idle", service.DefaultSessionIdle, "a portal session ends after this long without a request ($KEYPLANE_PORTAL_SESSION_IDLE)")
	f.DurationVar(&o.portalSessionMax, "portal-session-max", service.DefaultSessionMax, "a portal session ends this long after sign-in, however active ($KEYPLANE_PORTAL_SESSION_MAX)")
	o.webhooks.addFlags(f)
	return cmd
}

// serve runs the server until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, o serveOptions, stdout io.Writer, log *slog.Logger) error {
	if !isPostgres(o.database) {
		release, err := sqlite.LockForServing(sqlitePath(o.database))
		if err != nil {
			return err
		}
		defer release()
	}
	store, err := openStore(ctx, o.database)
	if err != nil {
		return err
	}
	defer store.Close()
	// An outage is logged when it starts and when it ends, not once per request.
	log = slog.New(outage.NewHandler(log.Handler(), outage.Config{Probe: store.Ping}))
	clock := coarseclock.New(time.Millisecond)
	defer clock.Stop()
	records, err := cache.New(store, cache.Config{MaxEntries: o.cacheSize, TTL: o.cacheTTL, ServeStale: o.cacheServeStale, Logger: log, Clock: clock})
	if err != nil {
		return err
	}
	defer records.Close()
	bus, err := openBus(ctx, o, store, log)
	if err != nil {
		return err
	}
	if closer, ok := bus.(io.Closer); ok {
		defer closer.Close()
	}
	ctx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	if bus != nil {
		stopped, err := listen(ctx, bus, records)
		if err != nil {
			return err
		}
		// Before the cache closes (deferred earlier, so run later): a catch-up
		// the listener starts must not race the cache's Close.
		defer func() { stopListening(); <-stopped }()
	}
	local := ratelimit.New()
	defer local.Close()
	var limiter keyplane.Limiter = local
	if rb, ok := bus.(*redis.Bus); ok {
		// Cluster mode: limits shared by every instance through Redis.
		shared := rb.Limiter(redis.LimiterConfig{FailOpen: !o.rateLimitFailClosed, Fallback: local})
		defer shared.Close()
		limiter = shared
	}
	throttle := ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	defer throttle.Close()
	quotas := quota.New(store, quota.Config{FlushInterval: o.quotaFlushInterval, Logger: log})
	defer func() {
		// Normally already flushed below; this covers a server that failed.
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		quotas.Close(ctx)
	}()
	meter := usage.New(store, usage.Config{FlushInterval: o.usageFlushInterval, Retention: o.usageRetention.Retention, Logger: log})
	defer func() {
		// As for quotas: normally already flushed below.
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		meter.Close(ctx)
	}()
	failures := verifyfailures.New(store, verifyfailures.Config{Logger: log})
	defer func() {
		// Normally already written below; this covers a server that failed.
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		failures.Close(ctx)
	}()
	secrets, err := o.webhooks.secretsKey(o.database, log)
	if err != nil {
		return err
	}
	dispatcher := o.webhooks.dispatcher(store, secrets, log)
	svc, err := service.New(store, service.Config{KeyPrefix: o.prefix, Now: clock.Now, Records: records, Tokens: records, Cache: records, Bus: bus,
		Limiter: limiter, Throttle: throttle, Quotas: quotas, Usage: meter, UsageReports: usage.NewReporter(store), VerifyFailures: failures,
		Signup: o.portalSignup, SessionIdle: o.portalSessionIdle, SessionMax: o.portalSessionMax,
		WebhookSecrets: secrets, WebhooksAllowPrivate: o.webhooks.allowPrivate, WebhookWake: dispatcher.Wake,
		LeakAction: keyplane.LeakAction(o.leakAction)})
	if err != nil {
		return err
	}
	gate, forwardAuth, rules, err := o.gate.gate(svc, log)
	if err != nil {
		return err
	}
	reloadOnHangup(ctx, rules, log)
	apiConfig := httpapi.Config{Service: svc, Store: store, Logger: log, Version: versionString(), Gate: gate, ForwardAuth: forwardAuth, PortalURL: o.portalURL}
	if o.githubScanningKeysURL != "" {
		apiConfig.GitHubScanningKeys = secretscan.NewKeySet(secretscan.KeysConfig{URL: o.githubScanningKeysURL})
	}
	if o.portal {
		p, err := portal.New(portal.Config{Service: svc, Logger: log, CookieSecure: o.portalCookieSecure, PortalURL: o.portalURL})
		if err != nil {
			return err
		}
		apiConfig.Portal, apiConfig.SessionCookie = p, p.CookieName()
	}
	handler := httpapi.New(apiConfig)
	// One port for both APIs: gRPC paths (/keyplane.v1.…/) to connect-go, the rest to the HTTP API.
	mux := http.NewServeMux()
	grpcapi.New(grpcapi.Config{Service: svc, Gate: gate, Logger: log}).Register(mux)
	mux.Handle("/", handler)
	ln, err := net.Listen("tcp", o.apiAddr())
	if err != nil {
		return err
	}
	defer ln.Close()
	gw, err := o.listenGateway(gate, rules, meter, log)
	if err != nil {
		return err
	}
	if gw != nil {
		defer gw.ln.Close()
	}
	// Only once the server can start, so the one printing is not lost; and
	// where it goes is opened first, so a token is never made that nobody
	// can be given.
	if n, err := store.CountTokens(ctx); err != nil {
		return err
	} else if n == 0 {
		out, path, err := firstTokenDestination(o, stdout)
		if err != nil {
			return err
		}
		first, err := svc.EnsureFirstToken(ctx)
		if err == nil && first != nil {
			_, err = fmt.Fprintf(out, "%s\n", first.Plaintext)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("create the first admin token: %w", err)
		}
		if path != "" {
			log.Warn("first admin token written to a file only its owner can read: keep the token somewhere safe, then delete the file", "path", path)
		}
	}
	srv := &http.Server{
		Handler:           mux,
		Protocols:         plaintextHTTP2(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	// Webhooks stop after the server: requests under way may still raise
	// events, and the dispatcher records the attempts in flight.
	webhooksCtx, stopWebhooks := context.WithCancel(context.WithoutCancel(ctx))
	waitWebhooks := o.webhooks.start(webhooksCtx, store, secrets, dispatcher, log)
	defer waitWebhooks()
	defer stopWebhooks()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if o.portal && !loopback(o.apiAddr()) && (!o.portalCookieSecure || strings.HasPrefix(o.portalURL, "http://")) {
		log.Warn("the portal is served over plain HTTP on an address other than loopback: members' passwords and session cookies cross the network readable by anyone on the way; put a proxy that terminates TLS in front and keep --portal-cookie-secure=true",
			"addr", ln.Addr().String(), "portal_cookie_secure", o.portalCookieSecure, "portal_url", o.portalURL)
	}
	log.Info("keyplane listening", "addr", ln.Addr().String(), "version", versionString(), "database", describeDatabase(o.database), "mode", mode(o, bus))
	if gw != nil {
		gw.serve(log, o.gate.upstream)
	}

	select {
	case err := <-served:
		return err
	case err := <-gw.done():
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout.String())
	shutdownCtx, cancel := contextWithTimeout(o.shutdownTimeout)
	defer cancel()
	if err := gw.shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopWebhooks()
	waitWebhooks()
	// Only now: no request can charge a quota any more.
	if err := quotas.Close(shutdownCtx); err != nil {
		return fmt.Errorf("write quota usage: %w", err)
	}
	if err := meter.Close(shutdownCtx); err != nil {
		return fmt.Errorf("write usage: %w", err)
	}
	if err := failures.Close(shutdownCtx); err != nil {
		return fmt.Errorf("write failed verifications to the audit log: %w", err)
	}
	log.Info("stopped")
	return nil
}

// firstTokenDestination is where the first admin token goes, once, and
// never through the log stream: the terminal when stdout is one, otherwise
// (a container, a service manager, a pipe: where stdout is collected as
// logs) a new file only its owner can read, whose path is returned to log.
func firstTokenDestination(o serveOptions, stdout io.Writer) (io.WriteCloser, string, error) {
	path := o.firstTokenFile
	if f, ok := stdout.(*os.File); ok && path == "" && isatty.IsTerminal(f.Fd()) {
		fmt.Fprintln(stdout, "First admin token (shown only this once; keep it safe):")
		return nopCloser{stdout}, "", nil
	}
	if path == "" {
		path = "keyplane-first-admin-token"
		if !isPostgres(o.database) {
			path = sqlitePath(o.database) + ".first-admin-token"
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("the first admin token: %w (move the old file away, or set --first-token-file)", err)
	}
	return f, path, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// plaintextHTTP2 serves HTTP/1.1 and unencrypted HTTP/2 (h2c), which gRPC
// clients such as grpcurl -plaintext speak; TLS is the proxy's in front.
func plaintextHTTP2() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// openBus picks how changes reach other instances: Redis when configured,
// else LISTEN/NOTIFY when the database is a shared PostgreSQL, else nothing
// (one instance on its own SQLite file).
func openBus(ctx context.Context, o serveOptions, store keyplane.Store, log *slog.Logger) (keyplane.ChangeBus, error) {
	if o.redisURL != "" {
		redis.SetLogger(log)
		return redis.Open(ctx, o.redisURL, o.channel, log)
	}
	if pg, ok := store.(*postgres.DB); ok {
		return pg.ChangeBus(o.channel, log), nil
	}
	return nil, nil
}

// listen subscribes the cache to the bus and waits until it is subscribed,
// so no change made after start-up can be missed. stopped is closed once
// Listen has returned (after ctx ends).
func listen(ctx context.Context, bus keyplane.ChangeBus, records keyplane.ChangeListener) (stopped <-chan struct{}, err error) {
	ready := make(chan struct{})
	failed := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		failed <- bus.Listen(ctx, records, ready)
	}()
	select {
	case <-ready:
		return done, nil
	case err := <-failed:
		return nil, fmt.Errorf("subscribe to changes: %w", err)
	case <-time.After(15 * time.Second):
		return nil, errors.New("subscribe to changes: no subscription after 15 s")
	}
}

func mode(o serveOptions, bus keyplane.ChangeBus) string {
	switch {
	case o.redisURL != "":
		return "cluster (Redis)"
	case bus != nil:
		return "cluster (PostgreSQL LISTEN/NOTIFY)"
	}
	return "embedded"
}

// describeDatabase names the database for logs without its password.
func describeDatabase(database string) string {
	if isPostgres(database) {
		return redactURL(database)
	}
	return "sqlite:" + database
}

func newMigrateCommand() *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := openStore(cmd.Context(), database)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "database is up to date:", describeDatabase(database))
			return store.Close()
		},
	}
	addDatabaseFlag(cmd, &database)
	return cmd
}

func newTokenCommand() *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Manage operator tokens"}
	// withService runs fn on the database as keyplane itself (the system actor).
	withService := func(cmd *cobra.Command, database string, fn func(ctx context.Context, svc *service.Service) error) error {
		ctx := cmd.Context()
		store, err := openExistingStore(ctx, database)
		if err != nil {
			return err
		}
		defer store.Close()
		svc, err := service.New(store, service.Config{Bus: cliBus(ctx, store)})
		if err != nil {
			return err
		}
		if err := fn(keyplane.NewContextWithActor(ctx, service.SystemActor), svc); err != nil {
			return errors.New(keyplane.ErrorMessage(err))
		}
		return nil
	}

	var database, name, role, account string
	var expires time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an operator token and print it (alone, on stdout)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withService(cmd, database, func(ctx context.Context, svc *service.Service) error {
				in := service.TokenInput{Name: name, Role: keyplane.Role(role), AccountID: account}
				if expires > 0 {
					at := time.Now().Add(expires)
					in.ExpiresAt = &at
				}
				t, err := svc.CreateToken(ctx, in)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), t.Plaintext)
				return nil
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringVar(&role, "role", "", "admin (manage everything, or one account with --account) or verify (verify keys, report usage, forward-auth) (required)")
	create.Flags().StringVar(&account, "account", "", "an account id: the admin token manages that account only")
	create.Flags().DurationVar(&expires, "expires-in", 0, "the token is refused after this long, e.g. 720h; default never")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("role")
	addDatabaseFlag(create, &database)

	var listDatabase string
	list := &cobra.Command{
		Use:   "list",
		Short: "List operator tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withService(cmd, listDatabase, func(ctx context.Context, svc *service.Service) error {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tNAME\tROLE\tACCOUNT\tCREATED\tEXPIRES\tSTATUS")
				page := keyplane.Page{Limit: 100}
				for {
					tokens, next, err := svc.ListTokens(ctx, page)
					if err != nil {
						return err
					}
					now := time.Now()
					for _, t := range tokens {
						expiry, status := "never", "active"
						if t.ExpiresAt != nil {
							expiry = t.ExpiresAt.Format(time.RFC3339)
						}
						if t.RevokedAt != nil {
							status = "revoked"
						} else if !t.Usable(now) {
							status = "expired"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, cmp.Or(t.AccountID, "-"), t.CreatedAt.Format(time.RFC3339), expiry, status)
					}
					if next == "" {
						return w.Flush()
					}
					page.Cursor = next
				}
			})
		},
	}
	addDatabaseFlag(list, &listDatabase)

	var revokeDatabase string
	var force bool
	revoke := &cobra.Command{
		Use:   "revoke TOKEN_ID",
		Short: "Revoke an operator token now (on every instance sharing a PostgreSQL database at once; a SQLite server sees it within --cache-ttl)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withService(cmd, revokeDatabase, func(ctx context.Context, svc *service.Service) error {
				t, err := svc.RevokeToken(ctx, args[0], force)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (%s)\n", t.ID, t.Name)
				return nil
			})
		},
	}
	revoke.Flags().BoolVar(&force, "force", false, "revoke even the last active admin token")
	addDatabaseFlag(revoke, &revokeDatabase)

	token.AddCommand(create, list, revoke)
	return token
}

// cliBus lets a command's changes reach running servers: over LISTEN/NOTIFY
// on PostgreSQL (every instance listens there, or catches up on reconnect).
// A SQLite server has no bus to hear it on and sees the change within its
// cache TTL.
func cliBus(ctx context.Context, store keyplane.Store) keyplane.ChangeBus {
	if pg, ok := store.(*postgres.DB); ok {
		return pg.ChangeBus("", slog.New(slog.DiscardHandler))
	}
	return nil
}

// retentionFlag is --usage-retention: usage.ParseRetention's format.
type retentionFlag struct{ usage.Retention }

func (f *retentionFlag) String() string { return f.Retention.String() }
func (f *retentionFlag) Type() string   { return "retention" }
func (f *retentionFlag) Set(v string) error {
	r, err := usage.ParseRetention(v)
	if err != nil {
		return err
	}
	f.Retention = r
	return nil
}

// loopback reports whether addr listens on a loopback address only: there,
// the portal's cookie may go over plain HTTP (browsers treat localhost as a
// secure context anyway).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
