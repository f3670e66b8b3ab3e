package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/service"
	"github.com/spf13/cobra"
)

func newAuditCommand() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "Check and export the tamper-evident audit log"}
	audit.AddCommand(newAuditVerifyCommand(), newAuditExportCommand())
	return audit
}

func newAuditVerifyCommand() *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk every chain of the audit log; exit 1 naming the first bad event of each broken chain",
		Long: `Recomputes the hash of every audit event and checks that each links to the one
before it, that sequence numbers have no gaps and that each chain ends at its
recorded head. Exit status: 0 intact, 1 tampered (each broken chain's first bad
event is printed), 2 the log could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, err := openExistingStore(ctx, database)
			if err != nil {
				return exitCode(2, err)
			}
			defer store.Close()
			report, err := keyplane.CheckAuditChains(ctx, store)
			if err != nil {
				return exitCode(2, fmt.Errorf("read the audit log: %w", err))
			}
			out := cmd.OutOrStdout()
			for _, p := range report.Problems {
				fmt.Fprintln(out, "BROKEN", p)
			}
			if len(report.Problems) > 0 {
				first := report.Problems[0]
				return exitCode(1, fmt.Errorf("audit log tampered: %d of %d chains broken; first bad event %s (%s)",
					len(report.Problems), report.Chains, first.EventID, first.Reason))
			}
			fmt.Fprintf(out, "audit log intact: %d chains, %d events\n", report.Chains, report.Events)
			return nil
		},
	}
	addDatabaseFlag(cmd, &database)
	return cmd
}

func newAuditExportCommand() *cobra.Command {
	var database, from, to string
	var f service.AuditFilter
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write audit events as NDJSON (one JSON object a line) to stdout, newest first",
		Long: `Writes the events that match the filters, newest first, one JSON object a line,
in the shape GET /v1/audit returns them (seq, prev_hash and hash included, so an
export can be checked and its chain heads anchored elsewhere).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if f.From, err = parseTimeFlag("from", from); err != nil {
				return err
			}
			if f.To, err = parseTimeFlag("to", to); err != nil {
				return err
			}
			store, err := openExistingStore(ctx, database)
			if err != nil {
				return err
			}
			defer store.Close()
			svc, err := service.New(store, service.Config{})
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			enc := json.NewEncoder(w)
			err = svc.ExportAudit(keyplane.NewContextWithActor(ctx, service.SystemActor), f, func(ev *keyplane.AuditEvent) error {
				return enc.Encode(httpapi.NewAuditEventBody(ev))
			})
			if err != nil {
				return errors.New(keyplane.ErrorMessage(err))
			}
			return w.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.AccountID, "account-id", "", "only events of this account")
	fl.StringVar(&f.KeyID, "key-id", "", "only events of this key")
	fl.StringVar(&f.Type, "type", "", "only events of this type, e.g. key.revoked")
	fl.StringVar(&f.ActorID, "actor", "", "only events caused by this token, member or system id")
	fl.StringVar(&from, "from", "", "only events at or after this time (RFC 3339)")
	fl.StringVar(&to, "to", "", "only events before this time (RFC 3339)")
	addDatabaseFlag(cmd, &database)
	return cmd
}

func parseTimeFlag(name, value string) (*time.Time, error) {
	if value == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, value)
	}
	return &t, nil
}

// exitError carries the exit status a command asks for; other errors exit 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// exitStatus is the status err asks for: 1 unless it is an exitError.
func exitStatus(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
