package keyplanemw

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"github.com/keyplane/keyplane/gen/keyplane/v1/keyplanev1connect"
)

// ConnectVerifier calls keyplane.v1.VerifyService/Verify: the Connect
// protocol by default, gRPC with connect.WithGRPC() (which needs an HTTP/2
// client, such as one with Protocols.SetUnencryptedHTTP2 for h2c).
type ConnectVerifier struct {
	client keyplanev1connect.VerifyServiceClient
	auth   string
}

// NewConnectVerifier returns a Verifier that speaks keyplane's gRPC API at
// serverURL with an operator token of role verify. A nil client is a
// default one with a 5 s timeout.
func NewConnectVerifier(serverURL, token string, client *http.Client, opts ...connect.ClientOption) *ConnectVerifier {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &ConnectVerifier{client: keyplanev1connect.NewVerifyServiceClient(client, strings.TrimRight(serverURL, "/"), opts...), auth: "Bearer " + token}
}

// Verify implements Verifier.
func (v *ConnectVerifier) Verify(ctx context.Context, in VerifyRequest) (*Result, error) {
	req := connect.NewRequest(&pb.VerifyRequest{Key: in.Key, Scope: in.Scope, Ip: in.IP, Endpoint: in.Endpoint, Cost: &in.Cost})
	req.Header().Set("Authorization", v.auth)
	res, err := v.client.Verify(ctx, req)
	if err != nil {
		return nil, err
	}
	m := res.Msg
	out := &Result{Valid: m.Valid, Code: strings.TrimPrefix(m.Code.String(), "VERIFY_CODE_"), KeyID: m.KeyId, AccountID: m.AccountId,
		Name: m.Name, Scopes: m.Scopes, RetryAfterSeconds: m.RetryAfterSeconds}
	if m.Environment != pb.Environment_ENVIRONMENT_UNSPECIFIED {
		out.Environment = strings.ToLower(strings.TrimPrefix(m.Environment.String(), "ENVIRONMENT_"))
	}
	if m.Metadata != nil {
		out.Metadata, _ = json.Marshal(m.Metadata.AsMap())
	}
	if m.ExpiresAt != nil {
		t := m.ExpiresAt.AsTime()
		out.ExpiresAt = &t
	}
	if rl := m.Ratelimit; rl != nil {
		out.RateLimit = &RateLimit{Policy: rl.Policy, Limit: rl.Limit, Remaining: rl.Remaining, ResetSeconds: rl.ResetSeconds, WindowSeconds: rl.WindowSeconds}
	}
	if q := m.Quota; q != nil {
		out.Quota = &Quota{Limit: q.Limit, Used: q.Used, Remaining: q.Remaining, Period: strings.ToLower(strings.TrimPrefix(q.Period.String(), "QUOTA_PERIOD_")),
			ResetsAt: q.ResetsAt.AsTime()}
	}
	return out, nil
}
