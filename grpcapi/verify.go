package grpcapi

import (
	"context"
	"net/netip"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// verifyService implements keyplane.v1.VerifyService.
type verifyService struct{ *Server }

func (s verifyService) Verify(ctx context.Context, req *connect.Request[pb.VerifyRequest]) (*connect.Response[pb.VerifyResponse], error) {
	in, err := verifyRequest(req.Msg)
	if err != nil {
		return nil, err
	}
	res, err := s.svc.Verify(ctx, in)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(verifyResponse(res)), nil
}

// verifyRequest checks the input with the rules of POST /v1/verify.
func verifyRequest(m *pb.VerifyRequest) (keyplane.VerifyRequest, error) {
	var v keyplane.Validation
	for _, f := range []struct {
		name, value string
		max         int
	}{{"key", m.Key, 256}, {"scope", m.Scope, 200}, {"ip", m.Ip, 64}, {"endpoint", m.Endpoint, 512}} {
		if n := utf8.RuneCountInString(f.value); n > f.max {
			v.Add(f.name, "expected length <= %d", f.max)
		}
	}
	if m.Key == "" {
		v.Add("key", "required")
	}
	req := keyplane.VerifyRequest{Key: m.Key, Scope: m.Scope, Endpoint: m.Endpoint, Cost: 1}
	if m.Ip != "" {
		ip, err := netip.ParseAddr(m.Ip)
		if err != nil {
			v.Add("ip", "%q is not an IPv4 or IPv6 address", m.Ip)
		}
		req.IP = ip
	}
	if m.Cost != nil {
		if *m.Cost < 0 || *m.Cost > 1_000_000 {
			v.Add("cost", "expected a number between 0 and 1000000")
		}
		req.Cost = *m.Cost
	}
	return req, v.Err()
}

func verifyResponse(res keyplane.VerifyResult) *pb.VerifyResponse {
	out := &pb.VerifyResponse{Valid: res.Valid, Code: verifyCodeToPB[res.Code]}
	if k := res.Key; k != nil {
		out.KeyId, out.AccountId, out.Name, out.Environment = k.ID, k.AccountID, k.Name, environmentToPB[k.Environment]
		out.Scopes, out.Metadata, out.ExpiresAt = k.Scopes, metadataToPB(k.Metadata), timestamp(k.ExpiresAt)
	}
	if rl := res.RateLimit; rl != nil {
		out.Ratelimit = &pb.RateLimitState{Policy: rl.Policy, Limit: rl.Limit, Remaining: rl.Remaining, ResetSeconds: admit.CeilSeconds(rl.Reset), WindowSeconds: admit.CeilSeconds(rl.Window)}
	}
	if res.Code == keyplane.VerifyRateLimited || res.Code == keyplane.VerifyQuotaExceeded {
		out.RetryAfterSeconds = max(1, admit.CeilSeconds(res.RetryAfter))
	}
	if q := res.Quota; q.Counted() {
		out.Quota = &pb.QuotaState{Limit: q.Limit, Used: q.Used, Remaining: q.Remaining, Period: periodToPB[q.Period], ResetsAt: timestamppb.New(q.ResetsAt)}
	}
	return out
}
