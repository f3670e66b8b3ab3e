package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/apikey"
)

// scanBin runs the built binary's scan with stdin, returning the exit
// code and output.
func scanBin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"scan"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestScanCommand: exit 1 found, 0 clean, 2 error; hints unless
// --show-secrets; stdin; SARIF without the key; --check asks a server.
func TestScanCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(t.TempDir(), "k.db")
	srv := startServer(t, "--database", db)
	token := srv.token(t)
	acc := srv.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme"}, 201)["id"].(string)
	live := srv.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k"}, 201)["key"].(string)
	gone := srv.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k"}, 201)
	srv.call(t, token, "POST", "/v1/keys/"+gone["id"].(string)+"/revoke", nil, 200)
	unknown := apikey.New("kp", "live")
	os.WriteFile(filepath.Join(dir, "a.env"), []byte("A="+live+"\nB="+gone["key"].(string)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.go"), []byte("package b\n\n// "+unknown+"\n"), 0o644)

	code, out, errOut := scanBin(t, "", dir)
	if code != 1 || strings.Count(out, "\n") != 3 || strings.Contains(out, live) || !strings.Contains(out, filepath.Join(dir, "a.env")+":1:3: "+apikey.Hint(live)) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := scanBin(t, "", "--show-secrets", dir); code != 1 || !strings.Contains(out, live) {
		t.Fatalf("--show-secrets: %d %s", code, out)
	}
	code, out, errOut = scanBin(t, "", "--check", "http://"+srv.addr, "--token", token, "--format", "json", dir)
	var finds []map[string]any
	if code != 1 || json.Unmarshal([]byte(out), &finds) != nil || len(finds) != 3 {
		t.Fatalf("--check: %d %s %s", code, out, errOut)
	}
	if finds[0]["status"] != "active" || finds[1]["status"] != "revoked" || finds[2]["status"] != "unknown" || strings.Contains(out, live) {
		t.Fatalf("--check: %s", out)
	}
	code, out, _ = scanBin(t, "", "--format", "sarif", dir)
	if code != 1 || !strings.Contains(out, `"version": "2.1.0"`) || strings.Contains(out, live) {
		t.Fatalf("sarif: %d %s", code, out)
	}
	if code, out, _ := scanBin(t, "x "+live+" y\n", "-"); code != 1 || !strings.HasPrefix(out, "-:1:3: ") {
		t.Fatalf("stdin: %d %q", code, out)
	}
	broken := live[:len(live)-1] + "x"
	if live[len(live)-1] == 'x' { // the checksum's last character must change
		broken = live[:len(live)-1] + "y"
	}
	if code, out, _ := scanBin(t, "nothing "+broken+"\n", "-"); code != 0 || out != "" {
		t.Fatalf("clean stdin: %d %q", code, out)
	}
	if code, _, errOut := scanBin(t, "", filepath.Join(dir, "missing")); code != 2 || errOut == "" {
		t.Fatalf("missing path: %d %s", code, errOut)
	}
	if code, _, _ := scanBin(t, "", "--format", "xml", dir); code != 2 {
		t.Fatalf("bad format: %d", code)
	}
}

// TestGitHubLeakRefusedOnTheOtherInstance: two instances on one
// PostgreSQL; GitHub (a test key pair, keys served from 127.0.0.1) reports
// keys to A; B refuses each soon after (target 100 ms; fails past 1 s, as
// TestClusterPropagation). Changes travel over LISTEN/NOTIFY.
func TestGitHubLeakRefusedOnTheOtherInstance(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	doc, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{
		{"key_identifier": "test-key", "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true}}})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	t.Cleanup(keys.Close)

	args := append(clusterArgs(t, "postgres"), "--github-scanning-keys-url", keys.URL)
	a := startServer(t, args...)
	token := a.token(t)
	other := startServer(t, args...)
	acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme"}, 201)["id"].(string)
	var worst time.Duration
	for range 5 {
		key := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k"}, 201)["key"].(string)
		if c := other.call(t, token, "POST", "/v1/verify", map[string]any{"key": key}, 200)["code"]; c != "VALID" {
			t.Fatalf("before: %v", c)
		}
		body, _ := json.Marshal([]map[string]string{{"token": key, "type": "keyplane_api_key", "url": "https://github.com/o/r/blob/x/a.go", "source": "content"}})
		d := sha256.Sum256(body)
		sig, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
		req, _ := http.NewRequest("POST", "http://"+a.addr+"/v1/secret-scanning/github", bytes.NewReader(body))
		req.Header.Set("Github-Public-Key-Identifier", "test-key")
		req.Header.Set("Github-Public-Key-Signature", base64.StdEncoding.EncodeToString(sig))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(answer), `"true_positive"`) {
			t.Fatalf("%d %s", resp.StatusCode, answer)
		}
		reported := time.Now()
		for other.call(t, token, "POST", "/v1/verify", map[string]any{"key": key}, 200)["code"] != "REVOKED" {
			if time.Since(reported) > time.Second {
				t.Fatal("the other instance still accepts a leaked key 1 s after GitHub's report")
			}
		}
		worst = max(worst, time.Since(reported))
	}
	t.Logf("a key GitHub reported is refused on the other instance within %v (worst of 5)", worst)
}
