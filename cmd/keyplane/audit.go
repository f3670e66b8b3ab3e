package main

import (
	"errors"
	"fmt"

	"github.com/keyplane/keyplane"
	"github.com/spf13/cobra"
)

func newAuditCommand() *cobra.Command {
	audit := &cobra.Command{Use: "audit", Short: "Check and export the tamper-evident audit log"}
	audit.AddCommand(newAuditVerifyCommand())
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
			store, err := openStore(ctx, database)
			if err != nil {
				return exitCode(2, err)
			}
			defer store.Close()
			report, err := keyplane.VerifyAuditLog(ctx, store)
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
