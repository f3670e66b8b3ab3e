package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/spf13/cobra"
)

func newMemberCommand() *cobra.Command {
	member := &cobra.Command{Use: "member", Short: "Manage portal members"}
	var database, account, email, role string
	var passwordStdin bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Add a member with a password to an account (e.g. its first owner)",
		Long: "Add a member to an account. The password is read from the first line of stdin with\n" +
			"--password-stdin; otherwise a random one is generated and printed once, alone, on stdout.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			password, generated := "", false
			if passwordStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("--password-stdin: no password on stdin")
				}
				password = strings.TrimRight(line, "\r\n")
			} else {
				password, generated = service.GeneratePassword(), true
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
			m, err := svc.CreateMember(keyplane.NewContextWithActor(ctx, service.SystemActor), account, service.MemberInput{Email: email, Role: keyplane.MemberRole(role), Password: password})
			if err != nil {
				return errors.New(keyplane.ErrorMessage(err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created member %s (%s, %s) in account %s\n", m.ID, m.Email, m.Role, m.AccountID)
			if generated {
				fmt.Fprintln(cmd.ErrOrStderr(), "password (shown only this once):")
				fmt.Fprintln(cmd.OutOrStdout(), password)
			}
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&account, "account", "", "the account's id (required)")
	f.StringVar(&email, "email", "", "the member's sign-in email (required)")
	f.StringVar(&role, "role", "", "owner, developer or viewer (required)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin instead of generating one")
	for _, name := range []string{"account", "email", "role"} {
		create.MarkFlagRequired(name)
	}
	addDatabaseFlag(create, &database)
	member.AddCommand(create)
	member.AddCommand(newMemberResetPasswordCommand())
	return member
}

// newMemberResetPasswordCommand prints a single-use password reset link for
// one member: the operator's way back in for an owner who lost theirs.
func newMemberResetPasswordCommand() *cobra.Command {
	var database, account, email, portalURL string
	cmd := &cobra.Command{
		Use:   "reset-password",
		Short: "Print a single-use password reset link (valid for 1 hour) for a member",
		Long: "Make a password reset link for the account's member with --email and print it alone on stdout.\n" +
			"It works once, for an hour; using it signs the member out everywhere. --portal-url is the\n" +
			"portal's public base URL, as for serve ($KEYPLANE_PORTAL_URL).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base := strings.TrimSuffix(portalURL, "/")
			if u, err := url.Parse(base); base == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return errors.New("--portal-url (or $KEYPLANE_PORTAL_URL) must be the portal's public base URL, e.g. https://keys.example.com: the link points there")
			}
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
			r, err := svc.IssuePasswordResetByEmail(keyplane.NewContextWithActor(ctx, service.SystemActor), account, email)
			if err != nil {
				return errors.New(keyplane.ErrorMessage(err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "password reset link for %s (member %s of account %s), single-use, valid until %s:\n",
				r.Email, r.MemberID, r.AccountID, r.ExpiresAt.UTC().Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), service.ResetURL(base, r.Token))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&account, "account", "", "the account's id (required)")
	f.StringVar(&email, "email", "", "the member's sign-in email (required)")
	f.StringVar(&portalURL, "portal-url", "", "the portal's public base URL, e.g. https://keys.example.com (required; $KEYPLANE_PORTAL_URL)")
	for _, name := range []string{"account", "email"} {
		cmd.MarkFlagRequired(name)
	}
	addDatabaseFlag(cmd, &database)
	return cmd
}
