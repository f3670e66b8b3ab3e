package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/httpapi"
)

// The real proxies, as the operator would run them, in front of a test
// upstream, with configurations from testdata/ that docs/integrations/ shows.

// needTool returns the path of a proxy binary; off CI a missing one skips
// the test, on CI (which installs it, see .ci/run) it fails.
func needTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", name, err)
		}
		t.Skipf("%s is not installed: apt-get install -y --no-install-recommends %s", name, name)
	}
	return path
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// echoUpstream is the operator's API: it answers with what it received.
type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
}

func echoUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyConfig fills a testdata template.
type proxyConfig struct {
	Dir, Listen, Keyplane, Upstream, Token string
	DirectListen                           string // nginx-bench.conf only
}

func writeConfig(t testing.TB, tmpl, dst string, c proxyConfig) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", tmpl))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := template.Must(template.New(tmpl).Parse(string(src))).Execute(&b, c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startProcess runs a proxy until the test ends, and waits until addr
// accepts connections. The proxy and its workers form their own process
// group: the cleanup stops the master, then ends that group, so no worker
// outlives the test.
func startProcess(t testing.TB, addr, logFile string, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		out.Close()
	})
	output := func() string {
		b, _ := os.ReadFile(out.Name())
		if logFile != "" {
			logs, _ := os.ReadFile(logFile)
			b = append(b, logs...)
		}
		return string(b)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", cmd.Path, output())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s did not listen on %s: %s", cmd.Path, addr, output())
}

// startNginx runs nginx with testdata/nginx.conf as the test's own process:
// its own prefix, config, pid and logs in a temporary directory.
func startNginx(t *testing.T, keyplane, upstream, token string) string {
	return runNginx(t, "nginx.conf", proxyConfig{Keyplane: keyplane, Upstream: upstream, Token: token})
}

func runNginx(t testing.TB, tmpl string, c proxyConfig) string {
	bin := needTool(t, "nginx")
	dir := t.TempDir()
	// nginx started as root runs its workers as nobody, who must reach the
	// temporary files' directory.
	os.Chmod(dir, 0o755)
	c.Dir, c.Listen = dir, freeAddr(t)
	conf := filepath.Join(dir, "nginx.conf")
	writeConfig(t, tmpl, conf, c)
	startProcess(t, c.Listen, filepath.Join(dir, "error.log"),
		exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"))
	return "http://" + c.Listen
}

// startCaddy runs caddy with testdata/Caddyfile, its home and data in a
// temporary directory.
func startCaddy(t *testing.T, keyplane, upstream, token string) string {
	bin := needTool(t, "caddy")
	dir := t.TempDir()
	c := proxyConfig{Dir: dir, Listen: freeAddr(t), Keyplane: keyplane, Upstream: upstream, Token: token}
	conf := filepath.Join(dir, "Caddyfile")
	writeConfig(t, "Caddyfile", conf, c)
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	startProcess(t, c.Listen, "", cmd)
	return "http://" + c.Listen
}

type proxied struct {
	status int
	header http.Header
	body   []byte
	echo   *echoed // what the upstream received, when the request reached it
}

func viaProxy(t *testing.T, base, method, path string, header map[string]string) proxied {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := proxied{status: resp.StatusCode, header: resp.Header}
	p.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		p.echo = &echoed{}
		if err := json.Unmarshal(p.body, p.echo); err != nil {
			t.Fatalf("not the upstream's answer: %s", p.body)
		}
	}
	return p
}

// TestProxies runs the same requests through nginx (auth_request, nginx
// mode) and Caddy (forward_auth, standard mode).
func TestProxies(t *testing.T) {
	for _, proxy := range []struct {
		name          string
		start         func(t *testing.T, keyplane, upstream, token string) string
		limitedStatus int
	}{
		{"nginx", startNginx, 403},
		{"caddy", startCaddy, 429},
	} {
		t.Run(proxy.name, func(t *testing.T) {
			f := newForwardAuth(t, admit.GateConfig{}, httpapi.ForwardAuthConfig{})
			upstream := echoUpstream(t)
			base := proxy.start(t, strings.TrimPrefix(f.url, "http://"), strings.TrimPrefix(upstream.URL, "http://"), f.verify)

			// A valid key reaches the upstream with the identity headers, without the
			// key, and a client's own identity headers are replaced.
			r := viaProxy(t, base, "GET", "/v1/things/7?x=1", map[string]string{"Authorization": "Bearer " + f.reader, "X-Keyplane-Key-Id": "key_forged", "X-Keyplane-Scopes": "*"})
			if r.status != 200 {
				t.Fatalf("valid key: %d %s", r.status, r.body)
			}
			h := r.echo.Header
			if !strings.HasPrefix(h.Get("X-Keyplane-Key-Id"), "key_") || !strings.HasPrefix(h.Get("X-Keyplane-Account-Id"), "acc_") ||
				h.Get("X-Keyplane-Scopes") != "things:read" || len(h.Values("X-Keyplane-Key-Id")) != 1 || len(h.Values("X-Keyplane-Scopes")) != 1 {
				t.Fatalf("identity headers upstream: %v", h)
			}
			if r.echo.URI != "/v1/things/7?x=1" || h.Get("Authorization") != "" || h.Get("X-Keyplane-Token") != "" {
				t.Fatalf("upstream got %s with %v", r.echo.URI, h)
			}
			r = viaProxy(t, base, "GET", "/v1/things/7", map[string]string{"X-API-Key": f.reader})
			if r.status != 200 || r.echo.Header.Get("X-Api-Key") != "" {
				t.Fatalf("X-API-Key: %d, upstream saw %v", r.status, r.echo)
			}

			for _, c := range []struct {
				name, method, path, key string
				status                  int
			}{
				{"no key", "GET", "/v1/things/7", "", 401},
				{"bad key", "GET", "/v1/things/7", "kp_live_000000000000000000000000000000000000", 401},
				{"revoked key", "GET", "/v1/things/7", f.revoked, 401},
				{"wrong scope", "POST", "/v1/things", f.reader, 403},
				{"no route", "DELETE", "/v1/things/7", f.reader, 403},
			} {
				hdr := map[string]string{}
				if c.key != "" {
					hdr["X-API-Key"] = c.key
				}
				if r := viaProxy(t, base, c.method, c.path, hdr); r.status != c.status {
					t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.status, r.body)
				}
			}

			// The limited key allows 6 per minute; a POST costs 5.
			if r := viaProxy(t, base, "POST", "/v1/things", map[string]string{"X-API-Key": f.limited}); r.status != 200 || r.echo.Method != "POST" {
				t.Fatalf("first POST: %d %s", r.status, r.body)
			}
			r = viaProxy(t, base, "POST", "/v1/things", map[string]string{"X-API-Key": f.limited})
			if r.status != proxy.limitedStatus {
				t.Fatalf("rate-limited: %d, want %d: %s", r.status, proxy.limitedStatus, r.body)
			}
			if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit") == "" {
				t.Fatalf("rate-limited: no Retry-After or RateLimit for the client: %v", r.header)
			}
			if proxy.limitedStatus == 429 && !strings.Contains(string(r.body), `"code":"rate_limited"`) {
				t.Fatalf("rate-limited: body %s", r.body)
			}
		})
	}
}
