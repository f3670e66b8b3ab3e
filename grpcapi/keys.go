package grpcapi

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"github.com/keyplane/keyplane/service"
)

// keyService implements keyplane.v1.KeyService on the service's key lifecycle.
type keyService struct{ *Server }

func (s keyService) CreateKey(ctx context.Context, req *connect.Request[pb.CreateKeyRequest]) (*connect.Response[pb.CreateKeyResponse], error) {
	m := req.Msg
	var v keyplane.Validation
	in := service.KeyInput{
		Name: m.Name, Scopes: m.Scopes, Environment: enumFromPB(&v, "environment", m.Environment, environmentFromPB),
		ExpiresAt: timeFromPB(&v, "expires_at", m.ExpiresAt), AllowedCIDRs: m.AllowedCidrs,
		RateLimits: policiesFromPB(&v, m.RateLimits), Quota: quotaFromPB(&v, m.Quota),
		Metadata: metadataFromPB(&v, m.Metadata), Enabled: m.Enabled,
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	k, err := s.svc.CreateKey(ctx, m.AccountId, in)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateKeyResponse{Key: keyToPB(k.Key, s.now()), Plaintext: k.Plaintext}), nil
}

func (s keyService) GetKey(ctx context.Context, req *connect.Request[pb.GetKeyRequest]) (*connect.Response[pb.GetKeyResponse], error) {
	k, err := s.svc.Key(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetKeyResponse{Key: keyToPB(k, s.now())}), nil
}

func (s keyService) ListKeys(ctx context.Context, req *connect.Request[pb.ListKeysRequest]) (*connect.Response[pb.ListKeysResponse], error) {
	m := req.Msg
	var v keyplane.Validation
	status := enumFromPB(&v, "status", m.Status, keyStatusFromPB)
	if err := v.Err(); err != nil {
		return nil, err
	}
	keys, next, err := s.svc.ListKeys(ctx, m.AccountId, status, keyplane.Page{Limit: int(m.Limit), Cursor: m.Cursor})
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := &pb.ListKeysResponse{Keys: make([]*pb.Key, len(keys)), NextCursor: next}
	for i, k := range keys {
		out.Keys[i] = keyToPB(k, now)
	}
	return connect.NewResponse(out), nil
}

func (s keyService) UpdateKey(ctx context.Context, req *connect.Request[pb.UpdateKeyRequest]) (*connect.Response[pb.UpdateKeyResponse], error) {
	up, err := keyUpdate(req.Msg)
	if err != nil {
		return nil, err
	}
	k, err := s.svc.UpdateKey(ctx, req.Msg.Id, up)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.UpdateKeyResponse{Key: keyToPB(k, s.now())}), nil
}

// keyUpdate turns an UpdateKeyRequest into a service update: a message or
// optional field that is present is set; the use_plan_*/clear_* flags set
// the field to none, as null does in PATCH /v1/keys/{id}.
func keyUpdate(m *pb.UpdateKeyRequest) (service.KeyUpdate, error) {
	var v keyplane.Validation
	var up service.KeyUpdate
	if m.Name != nil {
		up.Name = service.Optional[string]{Set: true, Value: *m.Name}
	}
	if m.Scopes != nil {
		up.Scopes = service.Optional[[]string]{Set: true, Value: m.Scopes.Values}
	}
	if m.AllowedCidrs != nil {
		up.AllowedCIDRs = service.Optional[[]string]{Set: true, Value: m.AllowedCidrs.Values}
	}
	switch {
	case m.UsePlanRateLimits && m.RateLimits != nil:
		v.Add("use_plan_rate_limits", "cannot be set together with rate_limits")
	case m.UsePlanRateLimits:
		up.RateLimits.Set = true
	case m.RateLimits != nil:
		up.RateLimits = service.Optional[[]keyplane.RateLimitPolicy]{Set: true, Value: policiesFromPB(&v, m.RateLimits)}
	}
	switch {
	case m.UsePlanQuota && m.Quota != nil:
		v.Add("use_plan_quota", "cannot be set together with quota")
	case m.UsePlanQuota:
		up.Quota.Set = true
	case m.Quota != nil:
		up.Quota = service.Optional[*keyplane.Quota]{Set: true, Value: quotaFromPB(&v, m.Quota)}
	}
	switch {
	case m.ClearExpiresAt && m.ExpiresAt != nil:
		v.Add("clear_expires_at", "cannot be set together with expires_at")
	case m.ClearExpiresAt:
		up.ExpiresAt.Set = true
	case m.ExpiresAt != nil:
		up.ExpiresAt = service.Optional[*time.Time]{Set: true, Value: timeFromPB(&v, "expires_at", m.ExpiresAt)}
	}
	if m.Metadata != nil {
		up.Metadata.Set, up.Metadata.Value = true, metadataFromPB(&v, m.Metadata)
	}
	if m.Enabled != nil {
		up.Enabled = service.Optional[bool]{Set: true, Value: *m.Enabled}
	}
	return up, v.Err()
}

func (s keyService) RollKey(ctx context.Context, req *connect.Request[pb.RollKeyRequest]) (*connect.Response[pb.RollKeyResponse], error) {
	secs := req.Msg.OverlapSeconds
	if secs < 0 || secs > int64(service.MaxRollOverlap/time.Second) {
		// Checked here too: a huge value would overflow the Duration.
		return nil, keyplane.Invalid("overlap_seconds", "must be between 0 and %d (7 days)", int64(service.MaxRollOverlap/time.Second))
	}
	r, err := s.svc.RollKey(ctx, req.Msg.Id, time.Duration(secs)*time.Second)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return connect.NewResponse(&pb.RollKeyResponse{Key: keyToPB(r.Key.Key, now), Plaintext: r.Key.Plaintext, Previous: keyToPB(r.Previous, now)}), nil
}

func (s keyService) RevokeKey(ctx context.Context, req *connect.Request[pb.RevokeKeyRequest]) (*connect.Response[pb.RevokeKeyResponse], error) {
	k, err := s.svc.RevokeKey(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RevokeKeyResponse{Key: keyToPB(k, s.now())}), nil
}

func (s keyService) DisableKey(ctx context.Context, req *connect.Request[pb.DisableKeyRequest]) (*connect.Response[pb.DisableKeyResponse], error) {
	k, err := s.setEnabled(ctx, req.Msg.Id, false)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DisableKeyResponse{Key: k}), nil
}

func (s keyService) EnableKey(ctx context.Context, req *connect.Request[pb.EnableKeyRequest]) (*connect.Response[pb.EnableKeyResponse], error) {
	k, err := s.setEnabled(ctx, req.Msg.Id, true)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.EnableKeyResponse{Key: k}), nil
}

func (s keyService) setEnabled(ctx context.Context, id string, enabled bool) (*pb.Key, error) {
	k, err := s.svc.UpdateKey(ctx, id, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: enabled}})
	if err != nil {
		return nil, err
	}
	return keyToPB(k, s.now()), nil
}
