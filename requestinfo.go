package keyplane

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
)

// MaxUserAgent bounds what an audit event keeps of a caller's user agent.
const MaxUserAgent = 256

// NewRequestInfo is what the transports (HTTP and gRPC) record of a call: the
// peer's address (no forwarding header is trusted), its user agent, bounded,
// and its id: the caller's when short and plain, else a new one, so a forged
// id cannot inject into logs or audit events.
func NewRequestInfo(remoteAddr, userAgent, requestID string) RequestInfo {
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		ip = remoteAddr
	}
	if len(userAgent) > MaxUserAgent {
		userAgent = strings.ToValidUTF8(userAgent[:MaxUserAgent], "")
	}
	if !validRequestID(requestID) {
		requestID = NewRequestID()
	}
	return RequestInfo{SourceIP: ip, UserAgent: userAgent, RequestID: requestID}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Request ids are a random per-process prefix and a counter: unique across
// instances without a crypto/rand read per request.
var (
	requestIDPrefix = func() string {
		var b [6]byte
		rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	requestIDCounter atomic.Uint64
)

// NewRequestID returns an id for a call that brought none.
func NewRequestID() string {
	return requestIDPrefix + "-" + strconv.FormatUint(requestIDCounter.Add(1), 36)
}
