package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

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
	return member
}
