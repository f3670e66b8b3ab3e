package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/service"
	"github.com/spf13/cobra"
)

func newServeCommand() *cobra.Command {
	var addr, database, prefix, logLevel, logFormat string
	var shutdownTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return err
			}
			store, err := openStore(ctx, database)
			if err != nil {
				return err
			}
			defer store.Close()
			svc, err := service.New(store, service.Config{KeyPrefix: prefix})
			if err != nil {
				return err
			}
			handler := httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: log, Version: versionString()})
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			defer ln.Close()
			// Only once the server can start, so the one printing is not lost.
			first, err := svc.EnsureFirstToken(ctx)
			if err != nil {
				return fmt.Errorf("create the first admin token: %w", err)
			}
			if first != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "First admin token (shown only this once; keep it safe):\n%s\n", first.Plaintext)
			}
			srv := &http.Server{
				Handler:           handler,
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       30 * time.Second,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       120 * time.Second,
				MaxHeaderBytes:    64 << 10,
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			log.Info("keyplane listening", "addr", ln.Addr().String(), "version", versionString(), "database", describeDatabase(database))

			select {
			case err := <-served:
				return err
			case <-ctx.Done():
			}
			log.Info("shutting down", "timeout", shutdownTimeout.String())
			shutdownCtx, cancel := contextWithTimeout(shutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on ($KEYPLANE_ADDR)")
	addDatabaseFlag(cmd, &database)
	f.StringVar(&prefix, "key-prefix", "kp", "prefix of the keys this deployment issues ($KEYPLANE_KEY_PREFIX)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error ($KEYPLANE_LOG_LEVEL)")
	f.StringVar(&logFormat, "log-format", "text", "text or json ($KEYPLANE_LOG_FORMAT)")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on SIGTERM ($KEYPLANE_SHUTDOWN_TIMEOUT)")
	return cmd
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
	var database, name, role string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an operator token and print it (alone, on stdout)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := openStore(ctx, database)
			if err != nil {
				return err
			}
			defer store.Close()
			svc, err := service.New(store, service.Config{})
			if err != nil {
				return err
			}
			t, err := svc.CreateToken(keyplane.NewContextWithActor(ctx, service.SystemActor), name, keyplane.Role(role))
			if err != nil {
				return errors.New(keyplane.ErrorMessage(err))
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Plaintext)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringVar(&role, "role", "", "admin (everything) or verify (only /v1/verify) (required)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("role")
	addDatabaseFlag(create, &database)
	token.AddCommand(create)
	return token
}
