package keyplane

import (
	"strings"
	"testing"
)

func TestNewRequestInfo(t *testing.T) {
	long := strings.Repeat("a", MaxUserAgent+10)
	tests := []struct {
		name, addr, ua, id string
		wantIP, wantUA     string
		keepID             bool
	}{
		{"plain", "203.0.113.7:5555", "curl/8", "req-1.A_b", "203.0.113.7", "curl/8", true},
		{"IPv6 peer", "[2001:db8::1]:443", "", "x", "2001:db8::1", "", true},
		{"no port", "unix", "", "", "unix", "", false},
		{"long user agent is cut", "10.0.0.1:1", long, "", "10.0.0.1", long[:MaxUserAgent], false},
		{"forged id with a newline", "10.0.0.1:1", "", "a\nlevel=ERROR", "10.0.0.1", "", false},
		{"id too long", "10.0.0.1:1", "", strings.Repeat("b", 65), "10.0.0.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewRequestInfo(tt.addr, tt.ua, tt.id)
			if got.SourceIP != tt.wantIP || got.UserAgent != tt.wantUA {
				t.Errorf("got ip %q ua %q", got.SourceIP, got.UserAgent)
			}
			if tt.keepID != (got.RequestID == tt.id) {
				t.Errorf("request id %q from %q: kept = %v, want %v", got.RequestID, tt.id, got.RequestID == tt.id, tt.keepID)
			}
			if !validRequestID(got.RequestID) {
				t.Errorf("request id %q is not plain", got.RequestID)
			}
		})
	}
	if a, b := NewRequestID(), NewRequestID(); a == b {
		t.Errorf("two new request ids are equal: %q", a)
	}
}
