package apikey

import (
	"regexp"
	"strings"
)

// secretShape matches what could be a key of any deployment or an operator
// token, checksum or not, and also longer or shorter secrets (a key pasted
// with a character too many or too few is still mostly secret): a key's
// prefix and environment, or kpt_, then 16 or more base62 characters. No \b:
// a key glued to other text ("id=xkp_live_…") is still a key.
var secretShape = regexp.MustCompile(`[a-z][a-z0-9]{1,9}_(?:live|test)_[0-9A-Za-z]{16,}|` + TokenPrefix + `_[0-9A-Za-z]{16,}`)

// Redact masks everything in s shaped like a key or an operator token, for
// text that is logged, such as a request path: a secret pasted where an id
// belongs must not reach the logs. Text without one is returned as it is,
// without allocating.
func Redact(s string) string {
	if !strings.Contains(s, "_live_") && !strings.Contains(s, "_test_") && !strings.Contains(s, TokenPrefix+"_") {
		return s
	}
	return secretShape.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, TokenPrefix+"_") && strings.Count(m, "_") == 1 {
			return "[redacted token]"
		}
		return "[redacted key]"
	})
}
