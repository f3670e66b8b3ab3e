package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// versionString is the -ldflags version, else the module version and, for a
// build from a source checkout, the VCS revision it was built from
// ("dev (rev 1a2b3c4d5e6f, modified)").
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" && !strings.Contains(v, rev[:min(12, len(rev))]) { // a pseudo-version names it already
		v += " (rev " + rev[:min(12, len(rev))] + modified + ")"
	}
	return v
}

// envNames maps flags to their environment variables; a flag given on the
// command line wins over its variable.
var envNames = map[string]string{
	"addr":                     "KEYPLANE_ADDR",
	"database":                 "KEYPLANE_DATABASE_URL",
	"key-prefix":               "KEYPLANE_KEY_PREFIX",
	"log-level":                "KEYPLANE_LOG_LEVEL",
	"log-format":               "KEYPLANE_LOG_FORMAT",
	"shutdown-timeout":         "KEYPLANE_SHUTDOWN_TIMEOUT",
	"redis":                    "KEYPLANE_REDIS_URL",
	"change-channel":           "KEYPLANE_CHANGE_CHANNEL",
	"cache-ttl":                "KEYPLANE_CACHE_TTL",
	"cache-serve-stale":        "KEYPLANE_CACHE_SERVE_STALE",
	"cache-size":               "KEYPLANE_CACHE_SIZE",
	"rate-limit-fail-closed":   "KEYPLANE_RATE_LIMIT_FAIL_CLOSED",
	"quota-flush-interval":     "KEYPLANE_QUOTA_FLUSH_INTERVAL",
	"usage-flush-interval":     "KEYPLANE_USAGE_FLUSH_INTERVAL",
	"usage-retention":          "KEYPLANE_USAGE_RETENTION",
	"portal":                   "KEYPLANE_PORTAL",
	"portal-signup":            "KEYPLANE_PORTAL_SIGNUP",
	"portal-cookie-secure":     "KEYPLANE_PORTAL_COOKIE_SECURE",
	"portal-url":               "KEYPLANE_PORTAL_URL",
	"first-token-file":         "KEYPLANE_FIRST_TOKEN_FILE",
	"portal-session-idle":      "KEYPLANE_PORTAL_SESSION_IDLE",
	"portal-session-max":       "KEYPLANE_PORTAL_SESSION_MAX",
	"secrets-key-file":         "KEYPLANE_SECRETS_KEY_FILE",
	"webhooks-allow-private":   "KEYPLANE_WEBHOOKS_ALLOW_PRIVATE",
	"webhook-retry-schedule":   "KEYPLANE_WEBHOOK_RETRY_SCHEDULE",
	"webhook-timeout":          "KEYPLANE_WEBHOOK_TIMEOUT",
	"webhook-poll-interval":    "KEYPLANE_WEBHOOK_POLL_INTERVAL",
	"webhook-retention":        "KEYPLANE_WEBHOOK_RETENTION",
	"token":                    "KEYPLANE_TOKEN",
	"leak-action":              "KEYPLANE_LEAK_ACTION",
	"github-scanning-keys-url": "KEYPLANE_GITHUB_SCANNING_KEYS_URL",
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "keyplane",
		Short:         "Self-hosted API key management: scoped keys, verification, audit",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
		// Bare keyplane: the help, as a usage error.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Help()
			return exitCode(2, errUsageShown)
		},
	}
	root.SetVersionTemplate("keyplane {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A mistyped flag or command says where the help is, and is a usage error.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitCode(2, fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	root.AddCommand(newServeCommand(), newMigrateCommand(), newTokenCommand(), newAuditCommand(), newMemberCommand(), newScanCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "keyplane", versionString()) },
	})
	return root
}

// applyEnv fills flags not given on the command line from their variables.
func applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		name, ok := envNames[f.Name]
		if !ok || f.Changed || err != nil {
			return
		}
		if v, set := os.LookupEnv(name); set {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

func addDatabaseFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "database", "keyplane.db", "a SQLite file path, or a postgres:// URL for PostgreSQL ($KEYPLANE_DATABASE_URL)")
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
