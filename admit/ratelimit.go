package admit

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/keyplane/keyplane"
)

// RateLimitHeaders writes the rate-limit fields of a verification onto a
// response: the IETF RateLimit-Policy and RateLimit fields, the common
// X-RateLimit-* ones and, for a refusal, Retry-After. Forward-auth and the
// gateway put them on the responses the operator's clients see.
func RateLimitHeaders(h http.Header, res keyplane.VerifyResult) {
	if res.Code == keyplane.VerifyRateLimited || res.Code == keyplane.VerifyQuotaExceeded {
		h.Set("Retry-After", strconv.FormatInt(max(1, CeilSeconds(res.RetryAfter)), 10))
	}
	rl := res.RateLimit
	if rl == nil {
		return
	}
	reset := CeilSeconds(rl.Reset)
	h.Set("RateLimit-Policy", fmt.Sprintf("%q;q=%d;w=%d", rl.Policy, rl.Limit, CeilSeconds(rl.Window)))
	h.Set("RateLimit", fmt.Sprintf("%q;r=%d;t=%d", rl.Policy, rl.Remaining, reset))
	h.Set("X-RateLimit-Limit", strconv.FormatInt(rl.Limit, 10))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(rl.Remaining, 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
}

// CeilSeconds rounds up to whole seconds, so a client that waits that long is
// never early; "never" (a cost that can never pass) stays very large.
func CeilSeconds(d time.Duration) int64 {
	if d >= time.Duration(math.MaxInt64-int64(time.Second)) {
		return math.MaxInt64 / int64(time.Second)
	}
	return int64((d + time.Second - 1) / time.Second)
}
