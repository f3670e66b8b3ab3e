package keyscan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/keyplane/keyplane/apikey"
)

// Find is one key found: where, its hint, and in history the commit.
type Find struct {
	Path   string `json:"path"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Hint   string `json:"hint"`
	Commit string `json:"commit,omitempty"`
	Blob   string `json:"-"`
	// Key is the plaintext; the CLI prints it only with --show-secrets.
	Key string `json:"-"`
}

// Options tune a scan.
type Options struct {
	Matcher     Matcher
	MaxFileSize int64 // files (and blobs) larger are skipped; 0 means 10 MiB
	Workers     int   // parallel reads; 0 means GOMAXPROCS
}

func (o Options) maxSize() int64 {
	if o.MaxFileSize <= 0 {
		return 10 << 20
	}
	return o.MaxFileSize
}

// binary reports whether data looks binary: a NUL in its first 8000 bytes,
// as git decides.
func binary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0
}

// scanBytes appends the finds in data.
func (o Options) scanBytes(path string, data []byte, out []Find) []Find {
	if binary(data) {
		return out
	}
	o.Matcher.Scan(data, func(m Match) {
		key := string(data[m.Start:m.End])
		out = append(out, Find{Path: path, Line: m.Line, Column: m.Column, Hint: apikey.Hint(key), Key: key})
	})
	return out
}

// Reader scans everything r yields, reported under name.
func (o Options) Reader(name string, r io.Reader) ([]Find, error) {
	data, err := io.ReadAll(io.LimitReader(r, o.maxSize()+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > o.maxSize() {
		return nil, fmt.Errorf("%s: over %d bytes", name, o.maxSize())
	}
	return o.scanBytes(name, data, nil), nil
}

// Paths scans files and directories (recursively, skipping .git, symlinks,
// binaries and files over MaxFileSize), reading files in parallel. Finds
// are sorted by path, line and column.
func (o Options) Paths(ctx context.Context, paths []string) ([]Find, error) {
	files := make(chan string, 256)
	var walkErr error
	go func() {
		defer close(files)
		for _, root := range paths {
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if d.IsDir() {
					if d.Name() == ".git" && p != root {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.Type().IsRegular() {
					return nil
				}
				files <- p
				return nil
			})
			if err != nil {
				walkErr = err
				return
			}
		}
	}()
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		mu    sync.Mutex
		finds []Find
		errs  []error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []Find
			for p := range files {
				data, err := readSmall(p, o.maxSize())
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				local = o.scanBytes(p, data, local)
			}
			mu.Lock()
			finds = append(finds, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	sortFinds(finds)
	return finds, errors.Join(errs...)
}

// readSmall reads a file unless it is over max bytes (nil, nil then).
func readSmall(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, nil
	}
	data := make([]byte, st.Size())
	_, err = io.ReadFull(f, data)
	return data, err
}

func sortFinds(finds []Find) {
	sort.Slice(finds, func(i, j int) bool {
		a, b := finds[i], finds[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Commit < b.Commit
	})
}

func git(ctx context.Context, repo string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	return cmd
}

// History scans every blob of every commit of the repository at repo, once
// each: `git rev-list --all --objects` names them (with a path),
// `git cat-file --batch` streams them, and for a blob with a find
// `git log --all --find-object` names the commit that introduced it.
func (o Options) History(ctx context.Context, repo string) ([]Find, error) {
	out, err := git(ctx, repo, "rev-list", "--all", "--objects").Output()
	if err != nil {
		return nil, gitErr("rev-list", err)
	}
	var objects []string
	paths := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		sha, path, ok := strings.Cut(l, " ")
		if !ok || path == "" {
			continue // commits, and trees at the root
		}
		if _, seen := paths[sha]; !seen {
			objects = append(objects, sha)
		}
		paths[sha] = path
	}
	finds, err := o.catFile(ctx, repo, objects, func(obj string) string { return paths[obj] })
	if err != nil {
		return nil, err
	}
	commits := map[string]string{}
	for i := range finds {
		f := &finds[i]
		c, ok := commits[f.Blob]
		if !ok {
			out, err := git(ctx, repo, "log", "--all", "--reverse", "--format=%H", "--find-object="+f.Blob).Output()
			if err != nil {
				return nil, gitErr("log", err)
			}
			c, _, _ = strings.Cut(string(out), "\n")
			commits[f.Blob] = c
		}
		f.Commit = c
	}
	sortFinds(finds)
	return finds, nil
}

// Staged scans what `git add` has staged in repo: the index's version of
// each added, copied, modified or renamed file.
func (o Options) Staged(ctx context.Context, repo string) ([]Find, error) {
	out, err := git(ctx, repo, "diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z").Output()
	if err != nil {
		return nil, gitErr("diff --cached", err)
	}
	var objects []string
	for _, p := range strings.Split(string(out), "\x00") {
		if p != "" {
			objects = append(objects, ":"+p)
		}
	}
	finds, err := o.catFile(ctx, repo, objects, func(obj string) string { return strings.TrimPrefix(obj, ":") })
	sortFinds(finds)
	return finds, err
}

// catFile streams objects through one `git cat-file --batch` and scans the
// blobs among them.
func (o Options) catFile(ctx context.Context, repo string, objects []string, pathOf func(string) string) ([]Find, error) {
	if len(objects) == 0 {
		return nil, nil
	}
	cmd := git(ctx, repo, "cat-file", "--batch")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, gitErr("cat-file", err)
	}
	go func() {
		w := bufio.NewWriter(stdin)
		for _, obj := range objects {
			fmt.Fprintln(w, obj)
		}
		w.Flush()
		stdin.Close()
	}()
	r := bufio.NewReaderSize(stdout, 1<<20)
	var finds []Find
	var buf []byte
	for _, obj := range objects {
		header, err := r.ReadString('\n')
		if err != nil {
			cmd.Wait()
			return nil, fmt.Errorf("git cat-file: %v %s", err, stderr.String())
		}
		fields := strings.Fields(header)
		if len(fields) == 2 && fields[1] == "missing" {
			continue
		}
		if len(fields) != 3 {
			cmd.Wait()
			return nil, fmt.Errorf("git cat-file: unexpected %q", header)
		}
		size, err := strconv.ParseInt(fields[2], 10, 64)
		if err != nil {
			cmd.Wait()
			return nil, fmt.Errorf("git cat-file: unexpected %q", header)
		}
		if fields[1] != "blob" || size > o.maxSize() {
			if _, err := r.Discard(int(size) + 1); err != nil {
				cmd.Wait()
				return nil, fmt.Errorf("git cat-file: %v", err)
			}
			continue
		}
		if int64(cap(buf)) < size+1 {
			buf = make([]byte, size+1)
		}
		buf = buf[:size+1]
		if _, err := io.ReadFull(r, buf); err != nil {
			cmd.Wait()
			return nil, fmt.Errorf("git cat-file: %v", err)
		}
		n := len(finds)
		finds = o.scanBytes(pathOf(obj), buf[:size], finds)
		for i := n; i < len(finds); i++ {
			finds[i].Blob = fields[0]
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, gitErr("cat-file", err)
	}
	return finds, nil
}

func gitErr(what string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("git %s: %s", what, strings.TrimSpace(string(ee.Stderr)))
	}
	return fmt.Errorf("git %s: %w", what, err)
}
