package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/keyscan"
	"github.com/spf13/cobra"
)

type scanOptions struct {
	prefix, format, checkURL, token     string
	anyPrefix, git, staged, showSecrets bool
	maxFileSize                         int64
}

// newScanCommand: `keyplane scan [PATH…]`. Exit 1 when a key was found, 0
// when clean, 2 on error.
func newScanCommand() *cobra.Command {
	var o scanOptions
	cmd := &cobra.Command{
		Use:   "scan [PATH…]",
		Short: "Find keyplane keys (checksum-valid only) in files, directories, git history (--git), staged changes (--staged) or stdin (-)",
		Long: `Find keyplane keys in files and directories (skipping .git/, binaries and files over --max-file-size),
in every blob of every commit (--git), in staged changes (--staged, for a pre-commit hook), or on stdin (-).
Only matches whose checksum is valid count. Reports path:line:column, the key's hint and the commit.
Exit status: 1 when a key was found, 0 when clean, 2 on error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := runScan(cmd, o, args)
			if err != nil {
				return exitCode(2, err)
			}
			if n > 0 {
				return exitCode(1, fmt.Errorf("%d key(s) found", n))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "key-prefix", apikey.DefaultPrefix, "the deployment's key prefix ($KEYPLANE_KEY_PREFIX)")
	f.BoolVar(&o.anyPrefix, "any-prefix", false, "find keys of any prefix, not only --key-prefix")
	f.BoolVar(&o.git, "git", false, "scan every blob of every commit of the repository at PATH (default .)")
	f.BoolVar(&o.staged, "staged", false, "scan the staged changes of the repository at PATH (default .), for a pre-commit hook")
	f.StringVar(&o.format, "format", "text", "text, json or sarif")
	f.BoolVar(&o.showSecrets, "show-secrets", false, "print whole keys instead of hints (never in SARIF)")
	f.Int64Var(&o.maxFileSize, "max-file-size", 10<<20, "skip files and blobs larger than this many bytes")
	f.StringVar(&o.checkURL, "check", "", "ask the keyplane server at this URL whether each key is active, revoked or unknown")
	f.StringVar(&o.token, "token", "", "an operator token (role verify is enough) for --check ($KEYPLANE_TOKEN)")
	return cmd
}

func runScan(cmd *cobra.Command, o scanOptions, args []string) (int, error) {
	if o.format != "text" && o.format != "json" && o.format != "sarif" {
		return 0, fmt.Errorf("--format %q: want text, json or sarif", o.format)
	}
	if o.git && o.staged {
		return 0, errors.New("--git and --staged do not go together")
	}
	if !o.anyPrefix && !apikey.ValidPrefix(o.prefix) {
		return 0, fmt.Errorf("--key-prefix %q: want 2 to 10 lowercase letters and digits, starting with a letter", o.prefix)
	}
	if o.checkURL != "" && o.token == "" {
		return 0, errors.New("--check needs --token")
	}
	opts := keyscan.Options{Matcher: keyscan.Matcher{Prefix: o.prefix}, MaxFileSize: o.maxFileSize}
	if o.anyPrefix {
		opts.Matcher.Prefix = ""
	}
	ctx := cmd.Context()
	var finds []keyscan.Find
	var err error
	switch {
	case o.git || o.staged:
		if len(args) > 1 {
			return 0, errors.New("--git and --staged take one repository")
		}
		repo := "."
		if len(args) == 1 {
			repo = args[0]
		}
		if o.git {
			finds, err = opts.History(ctx, repo)
		} else {
			finds, err = opts.Staged(ctx, repo)
		}
	case len(args) == 1 && args[0] == "-":
		finds, err = opts.Reader("-", cmd.InOrStdin())
	default:
		if len(args) == 0 {
			args = []string{"."}
		}
		finds, err = opts.Paths(ctx, args)
	}
	if err != nil {
		return 0, err
	}
	var status []string
	if o.checkURL != "" {
		if status, err = checkKeys(ctx, o.checkURL, o.token, finds); err != nil {
			return 0, err
		}
	}
	w := cmd.OutOrStdout()
	switch o.format {
	case "json":
		err = keyscan.JSON(w, finds, o.showSecrets, status)
	case "sarif":
		err = keyscan.SARIF(w, finds, versionString(), status)
	default:
		err = keyscan.Text(w, finds, o.showSecrets, status)
	}
	return len(finds), err
}

// checkKeys asks the server's /v1/verify about each key, at cost 0 so
// nothing is charged, and keeps only the outcome: active, revoked,
// expired, disabled or unknown.
func checkKeys(ctx context.Context, base, token string, finds []keyscan.Find) ([]string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	status := make([]string, len(finds))
	for i, f := range finds {
		body, _ := json.Marshal(map[string]any{"key": f.Key, "cost": 0})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/verify", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("--check: %w", err)
		}
		var res struct {
			Code string `json:"code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			return nil, fmt.Errorf("--check: the server answered %s", resp.Status)
		}
		switch res.Code {
		case "NOT_FOUND":
			status[i] = "unknown"
		case "REVOKED":
			status[i] = "revoked"
		case "EXPIRED":
			status[i] = "expired"
		case "DISABLED":
			status[i] = "disabled"
		default: // valid, or valid but limited or out of scope
			status[i] = "active"
		}
	}
	return status, nil
}
