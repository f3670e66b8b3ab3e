package keyscan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/keyscan"
)

// lookAlike is a key of the right shape whose checksum is wrong.
func lookAlike(prefix string) string {
	k := apikey.New(prefix, "live")
	last := k[len(k)-1]
	if last == 'a' {
		return k[:len(k)-1] + "b"
	}
	return k[:len(k)-1] + "a"
}

type planted struct {
	path string
	line int
	key  string
}

// Tree writes files holding n look-alikes, and real keys at the given
// places; it returns the root.
func Tree(t testing.TB, n, files int, real []planted) string {
	t.Helper()
	root := t.TempDir()
	perFile := n / files
	for f := range files {
		var b strings.Builder
		for i := range perFile {
			fmt.Fprintf(&b, "// config line %d\nconst key%d = \"%s\" // look-alike\n", i, i, lookAlike("kp"))
		}
		dir := filepath.Join(root, fmt.Sprintf("pkg%02d", f%10))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%03d.go", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range real {
		full := filepath.Join(root, p.path)
		data, _ := os.ReadFile(full)
		lines := strings.Split(string(data), "\n")
		for len(lines) < p.line {
			lines = append(lines, "")
		}
		lines[p.line-1] = "\tapiKey := \"" + p.key + "\""
		if err := os.WriteFile(full, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestTreeFindsExactlyTheRealKeys: 3 real keys among 10,000 look-alikes
// with bad checksums: exactly the 3, with their lines and columns.
func TestTreeFindsExactlyTheRealKeys(t *testing.T) {
	real := []planted{
		{"pkg01/file001.go", 7, apikey.New("kp", "live")},
		{"pkg05/file015.go", 120, apikey.New("kp", "test")},
		{"pkg09/file099.go", 1, apikey.New("kp", "live")},
	}
	root := Tree(t, 10000, 100, real)
	// A .git directory and a binary file with a real key are skipped.
	os.MkdirAll(filepath.Join(root, ".git"), 0o755)
	os.WriteFile(filepath.Join(root, ".git", "config"), []byte(apikey.New("kp", "live")), 0o644)
	os.WriteFile(filepath.Join(root, "blob.bin"), append([]byte{0, 1, 2}, apikey.New("kp", "live")...), 0o644)
	// A key of another prefix counts only with --any-prefix.
	other := apikey.New("acme", "live")
	os.WriteFile(filepath.Join(root, "other.txt"), []byte("x="+other+"\n"), 0o644)

	finds, err := keyscan.Options{Matcher: keyscan.Matcher{Prefix: "kp"}}.Paths(context.Background(), []string{root})
	if err != nil {
		t.Fatal(err)
	}
	if len(finds) != 3 {
		t.Fatalf("%d finds, want 3: %+v", len(finds), finds)
	}
	for i, p := range real {
		f := finds[i]
		if f.Path != filepath.Join(root, p.path) || f.Line != p.line || f.Column != len("\tapiKey := \"")+1 || f.Key != p.key || f.Hint != apikey.Hint(p.key) {
			t.Errorf("find %d: %+v, want %s:%d", i, f, p.path, p.line)
		}
	}
	finds, err = keyscan.Options{}.Paths(context.Background(), []string{root})
	if err != nil || len(finds) != 4 {
		t.Fatalf("any prefix: %d finds, %v", len(finds), err)
	}
}

// TestMatcherBoundaries follows the published regex's word boundaries.
func TestMatcherBoundaries(t *testing.T) {
	k := apikey.New("kp", "live")
	for _, c := range []struct {
		text string
		want int
	}{
		{k, 1}, {"\"" + k + "\"", 1}, {"KEY=" + k + "\n", 1}, {"x" + k, 0}, {"xyzzyxyzzyx" + k, 0}, {"X" + k, 0}, {"_" + k, 0}, {k + "a", 0}, {k + "_", 0},
		{k[:len(k)-1], 0}, {k + "-" + k, 2}, {"é" + k, 1}, {lookAlike("kp"), 0},
	} {
		n := 0
		keyscan.Matcher{Prefix: "kp"}.Scan([]byte(c.text), func(keyscan.Match) { n++ })
		if n != c.want {
			t.Errorf("%q: %d finds, want %d", c.text, n, c.want)
		}
	}
	// Any prefix: "xkp" is a prefix too, as the regex says; 11 characters are not.
	for text, want := range map[string]int{"x" + k: 1, "xyzzyxyzzyx" + k: 0, "Xkp" + k[2:]: 0} {
		n := 0
		keyscan.Matcher{}.Scan([]byte(text), func(keyscan.Match) { n++ })
		if n != want {
			t.Errorf("any prefix %q: %d finds, want %d", text, n, want)
		}
	}
	var m []keyscan.Match
	keyscan.Matcher{Prefix: "kp"}.Scan([]byte("a\nbé "+k+"\n\n  "+k), func(x keyscan.Match) { m = append(m, x) })
	if len(m) != 2 || m[0].Line != 2 || m[0].Column != 4 || m[1].Line != 4 || m[1].Column != 3 {
		t.Fatalf("positions %+v", m)
	}
}

// TestScanDoesNotAllocate: look-alikes cost no allocation.
func TestScanDoesNotAllocate(t *testing.T) {
	var b bytes.Buffer
	for range 1000 {
		b.WriteString("x := \"" + lookAlike("kp") + "\"\n")
	}
	data := b.Bytes()
	allocs := testing.AllocsPerRun(10, func() { keyscan.Matcher{Prefix: "kp"}.Scan(data, func(keyscan.Match) {}) })
	if allocs != 0 {
		t.Fatalf("%v allocations per scan", allocs)
	}
}

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestHistoryFindsADeletedKey: a key committed, then deleted, is found in
// history with the commit that added it; the work tree is clean.
func TestHistoryFindsADeletedKey(t *testing.T) {
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q")
	key := apikey.New("kp", "live")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(repo, "config.env"), []byte("# config\nAPI_KEY="+key+"\n"), 0o644)
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-q", "-m", "add config")
	added := gitRun(t, repo, "rev-parse", "HEAD")
	os.Remove(filepath.Join(repo, "config.env"))
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "remove the key")

	opts := keyscan.Options{Matcher: keyscan.Matcher{Prefix: "kp"}}
	finds, err := opts.History(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(finds) != 1 || finds[0].Path != "config.env" || finds[0].Line != 2 || finds[0].Column != 9 || finds[0].Commit != added {
		t.Fatalf("history: %+v, want config.env:2:9 in %s", finds, added)
	}
	if finds, err := opts.Paths(context.Background(), []string{repo}); err != nil || len(finds) != 0 {
		t.Fatalf("work tree: %+v, %v", finds, err)
	}

	// Staged: only what is added to the index.
	os.WriteFile(filepath.Join(repo, "new.go"), []byte("package x\nvar k = \""+key+"\"\n"), 0o644)
	if finds, err := opts.Staged(context.Background(), repo); err != nil || len(finds) != 0 {
		t.Fatalf("nothing staged: %+v, %v", finds, err)
	}
	gitRun(t, repo, "add", "new.go")
	finds, err = opts.Staged(context.Background(), repo)
	if err != nil || len(finds) != 1 || finds[0].Path != "new.go" || finds[0].Line != 2 || finds[0].Commit != "" {
		t.Fatalf("staged: %+v, %v", finds, err)
	}
	if _, err := opts.History(context.Background(), t.TempDir()); err == nil {
		t.Fatal("history of a directory that is no repository")
	}
}

// TestSARIF: the log has what SARIF 2.1.0 requires, and no key.
func TestSARIF(t *testing.T) {
	key := apikey.New("kp", "live")
	finds := []keyscan.Find{{Path: "a/b.go", Line: 3, Column: 7, Hint: apikey.Hint(key), Key: key, Commit: "abc123"}}
	var b bytes.Buffer
	if err := keyscan.SARIF(&b, finds, "test", nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), key) {
		t.Fatal("SARIF carries the key")
	}
	var log struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID  string `json:"ruleId"`
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-2.1.0") || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name == "" {
		t.Fatalf("log %+v", log)
	}
	r := log.Runs[0]
	if len(r.Results) != 1 || r.Results[0].RuleID != keyscan.RuleID || r.Results[0].Message.Text == "" || len(r.Results[0].Locations) != 1 ||
		len(r.Tool.Driver.Rules) != 1 || r.Tool.Driver.Rules[0].ID != keyscan.RuleID {
		t.Fatalf("run %+v", r)
	}
	loc := r.Results[0].Locations[0].PhysicalLocation
	if loc.ArtifactLocation.URI != "a/b.go" || loc.Region.StartLine != 3 || loc.Region.StartColumn != 7 {
		t.Fatalf("location %+v", loc)
	}
}

// BenchmarkScanTree: the generated tree (10,000 look-alikes, 3 keys).
func BenchmarkScanTree(b *testing.B) {
	root := Tree(b, 10000, 100, []planted{{"pkg01/file001.go", 7, apikey.New("kp", "live")}})
	var size int64
	filepath.Walk(root, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	b.SetBytes(size)
	for b.Loop() {
		if _, err := (keyscan.Options{Matcher: keyscan.Matcher{Prefix: "kp"}}).Paths(context.Background(), []string{root}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriteBenchTree writes the tree of docs/benchmarks.md to
// $KEYPLANE_BENCH_TREE: 1,000 files of Go-like filler (about 50 MB) with
// 10,000 look-alikes and 3 real keys, whose hints it prints.
func TestWriteBenchTree(t *testing.T) {
	root := os.Getenv("KEYPLANE_BENCH_TREE")
	if root == "" {
		t.Skip("set KEYPLANE_BENCH_TREE to a directory")
	}
	filler := strings.Repeat("\tif err := doSomething(ctx, user_id, request_time); err != nil { return fmt.Errorf(\"do_something: %w\", err) }\n", 8)
	for f := range 1000 {
		var b strings.Builder
		b.WriteString("package bench\n\n")
		for i := range 10 {
			for range 6 {
				b.WriteString(filler)
			}
			fmt.Fprintf(&b, "const token%d = \"%s\"\n", i, lookAlike("kp"))
		}
		dir := filepath.Join(root, fmt.Sprintf("pkg%02d", f%20))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%04d.go", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range []string{"pkg01/file0001.go", "pkg07/file0507.go", "pkg19/file0999.go"} {
		key := apikey.New("kp", "live")
		f, err := os.OpenFile(filepath.Join(root, p), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "var realKey%d = \"%s\"\n", i, key)
		f.Close()
		t.Logf("real key %s in %s", apikey.Hint(key), p)
	}
}
