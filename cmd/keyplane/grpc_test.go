package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// grpcurl finds grpcurl on PATH or in GOPATH/bin, where .ci/run installs it.
// Off CI a machine without it skips; in CI its absence fails.
func grpcurl(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "grpcurl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("grpcurl is not installed; .ci/run installs it")
	}
	t.Skip("grpcurl is not installed: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
	return ""
}

// The gRPC API of a real keyplane serve, through grpcurl -plaintext and
// server reflection, on the HTTP API's port: the commands of docs/integrations/grpc.md.
func TestGRPCurl(t *testing.T) {
	bin := grpcurl(t)
	s := startServer(t, "--database", filepath.Join(t.TempDir(), "grpc.db"))
	token := s.token(t)
	run := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		return string(out), err
	}

	out, err := run(s.addr, "list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	for _, svc := range []string{"keyplane.v1.AccountService", "keyplane.v1.KeyService", "keyplane.v1.VerifyService"} {
		if !strings.Contains(out, svc) {
			t.Fatalf("list does not show %s:\n%s", svc, out)
		}
	}
	out, err = run(s.addr, "describe", "keyplane.v1.VerifyService.Verify")
	if err != nil || !strings.Contains(out, "rpc Verify ( .keyplane.v1.VerifyRequest ) returns ( .keyplane.v1.VerifyResponse )") {
		t.Fatalf("describe: %v\n%s", err, out)
	}

	auth := "authorization: Bearer " + token
	out, err = run("-H", auth, "-d", `{"name": "Acme", "allowed_scopes": ["enrichment:*"]}`, s.addr, "keyplane.v1.AccountService/CreateAccount")
	if err != nil {
		t.Fatalf("CreateAccount: %v\n%s", err, out)
	}
	accountID := field(t, out, `"id": "`)
	out, err = run("-H", auth, "-d", `{"account_id": "`+accountID+`", "name": "production", "scopes": ["enrichment:read"]}`, s.addr, "keyplane.v1.KeyService/CreateKey")
	if err != nil {
		t.Fatalf("CreateKey: %v\n%s", err, out)
	}
	key := field(t, out, `"plaintext": "`)

	out, err = run("-H", auth, "-d", `{"key": "`+key+`", "scope": "enrichment:read"}`, s.addr, "keyplane.v1.VerifyService/Verify")
	if err != nil || !strings.Contains(out, `"valid": true`) || !strings.Contains(out, `"code": "VERIFY_CODE_VALID"`) {
		t.Fatalf("Verify: %v\n%s", err, out)
	}
	out, err = run("-H", auth, "-d", `{"key": "`+key+`", "scope": "billing:read"}`, s.addr, "keyplane.v1.VerifyService/Verify")
	if err != nil || !strings.Contains(out, `"code": "VERIFY_CODE_INSUFFICIENT_SCOPE"`) {
		t.Fatalf("Verify, wrong scope: %v\n%s", err, out)
	}
	out, err = run("-d", `{"key": "`+key+`"}`, s.addr, "keyplane.v1.VerifyService/Verify")
	if err == nil || !strings.Contains(out, "Code: Unauthenticated") {
		t.Fatalf("Verify without a token: %v\n%s", err, out)
	}
	out, err = run("-H", auth, "-d", `{"account_id": "`+accountID+`", "name": ""}`, s.addr, "keyplane.v1.KeyService/CreateKey")
	if err == nil || !strings.Contains(out, "Code: InvalidArgument") || !strings.Contains(out, "google.rpc.BadRequest") {
		t.Fatalf("CreateKey without a name: %v\n%s", err, out)
	}
	if strings.Contains(s.logs.String(), key) {
		t.Fatal("the plaintext key reached the logs")
	}
}

// field returns the string value after prefix in grpcurl's JSON output.
func field(t *testing.T, out, prefix string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, prefix)
	if !ok {
		t.Fatalf("no %s in %s", prefix, out)
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
