package keyscan

import (
	"bytes"
	"unicode/utf8"

	"github.com/keyplane/keyplane/apikey"
)

// Match is a key found in a buffer: its byte offsets, 1-based line and
// column (in characters).
type Match struct {
	Start, End   int
	Line, Column int
}

// Matcher finds keys of one prefix, or of any with Prefix "".
type Matcher struct {
	Prefix string
}

// isWord reports whether c is a regexp word character: [0-9A-Za-z_].
func isWord(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isLowerDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' }

// Scan calls fn for each checksum-valid key in data, in order. It does not
// allocate: candidates are found with IndexByte on '_' and checked in place.
func (m Matcher) Scan(data []byte, fn func(Match)) {
	line, lineStart, counted := 1, 0, 0
	for pos := 0; ; {
		i := bytes.IndexByte(data[pos:], '_')
		if i < 0 {
			return
		}
		u := pos + i // the underscore before the environment
		pos = u + 1
		// prefix: a run of [a-z0-9] right before u, preceded by a non-word byte.
		end := u + 1 + 5 + apikey.SecretLen
		if end > len(data) || u < 2 {
			if end > len(data) {
				return
			}
			continue
		}
		env := data[u+1 : u+6]
		if !(env[4] == '_' && (string(env[:4]) == "live" || string(env[:4]) == "test")) {
			continue
		}
		start := u
		for start > 0 && u-start < 11 && isLowerDigit(data[start-1]) {
			start--
		}
		n := u - start
		if n < 2 || n > 10 || !('a' <= data[start] && data[start] <= 'z') || (start > 0 && isWord(data[start-1])) {
			continue
		}
		if m.Prefix != "" && string(data[start:u]) != m.Prefix {
			continue
		}
		if end < len(data) && isWord(data[end]) {
			continue
		}
		if !apikey.ValidSecretBytes(data[u+6 : end]) {
			continue
		}
		// Lines are counted only up to a find: look-alikes cost nothing here.
		line += bytes.Count(data[counted:start], []byte{'\n'})
		if nl := bytes.LastIndexByte(data[counted:start], '\n'); nl >= 0 {
			lineStart = counted + nl + 1
		}
		counted = start
		fn(Match{Start: start, End: end, Line: line, Column: utf8.RuneCount(data[lineStart:start]) + 1})
		pos = end
	}
}
