package grpcapi

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/keyplane/keyplane"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Enums: the API's strings and the proto enums, both ways.

var environmentToPB = map[keyplane.Environment]pb.Environment{keyplane.EnvLive: pb.Environment_ENVIRONMENT_LIVE, keyplane.EnvTest: pb.Environment_ENVIRONMENT_TEST}

var keyStatusToPB = map[keyplane.KeyStatus]pb.KeyStatus{
	keyplane.KeyActive: pb.KeyStatus_KEY_STATUS_ACTIVE, keyplane.KeyDisabled: pb.KeyStatus_KEY_STATUS_DISABLED,
	keyplane.KeyRolling: pb.KeyStatus_KEY_STATUS_ROLLING, keyplane.KeyExpired: pb.KeyStatus_KEY_STATUS_EXPIRED, keyplane.KeyRevoked: pb.KeyStatus_KEY_STATUS_REVOKED,
}

var algorithmToPB = map[keyplane.Algorithm]pb.Algorithm{keyplane.TokenBucket: pb.Algorithm_ALGORITHM_TOKEN_BUCKET, keyplane.SlidingWindow: pb.Algorithm_ALGORITHM_SLIDING_WINDOW}

var periodToPB = map[keyplane.QuotaPeriod]pb.QuotaPeriod{keyplane.QuotaDay: pb.QuotaPeriod_QUOTA_PERIOD_DAY, keyplane.QuotaMonth: pb.QuotaPeriod_QUOTA_PERIOD_MONTH}

var accountStatusToPB = map[keyplane.AccountStatus]pb.AccountStatus{keyplane.AccountActive: pb.AccountStatus_ACCOUNT_STATUS_ACTIVE, keyplane.AccountSuspended: pb.AccountStatus_ACCOUNT_STATUS_SUSPENDED}

var verifyCodeToPB = map[keyplane.VerifyCode]pb.VerifyCode{
	keyplane.VerifyValid: pb.VerifyCode_VERIFY_CODE_VALID, keyplane.VerifyNotFound: pb.VerifyCode_VERIFY_CODE_NOT_FOUND,
	keyplane.VerifyRevoked: pb.VerifyCode_VERIFY_CODE_REVOKED, keyplane.VerifyExpired: pb.VerifyCode_VERIFY_CODE_EXPIRED,
	keyplane.VerifyDisabled: pb.VerifyCode_VERIFY_CODE_DISABLED, keyplane.VerifyForbidden: pb.VerifyCode_VERIFY_CODE_FORBIDDEN,
	keyplane.VerifyInsufficientScope: pb.VerifyCode_VERIFY_CODE_INSUFFICIENT_SCOPE, keyplane.VerifyRateLimited: pb.VerifyCode_VERIFY_CODE_RATE_LIMITED,
	keyplane.VerifyQuotaExceeded: pb.VerifyCode_VERIFY_CODE_QUOTA_EXCEEDED,
}

// invert builds the reverse of an enum map.
func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	environmentFromPB   = invert(environmentToPB)
	keyStatusFromPB     = invert(keyStatusToPB)
	algorithmFromPB     = invert(algorithmToPB)
	periodFromPB        = invert(periodToPB)
	accountStatusFromPB = invert(accountStatusToPB)
)

// enumFromPB converts an enum of a request: unspecified is "" (the default),
// and a number the API does not know is reported as invalid on field.
func enumFromPB[P ~int32, D ~string](v *keyplane.Validation, field string, in P, m map[P]D) D {
	if in == 0 {
		return ""
	}
	d, ok := m[in]
	if !ok {
		v.Add(field, "unknown value %d", in)
	}
	return d
}

func timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// timeFromPB converts an optional timestamp, checking it is one.
func timeFromPB(v *keyplane.Validation, field string, ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	if err := ts.CheckValid(); err != nil {
		v.Add(field, "not a valid timestamp")
		return nil
	}
	t := ts.AsTime()
	return &t
}

// metadataToPB turns a key's JSON object into a Struct. Struct numbers are
// doubles: integers beyond 2^53 lose precision here (the HTTP API keeps them).
func metadataToPB(raw json.RawMessage) *structpb.Struct {
	s := &structpb.Struct{}
	if len(raw) == 0 {
		return s
	}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return &structpb.Struct{} // the service stores only JSON objects
	}
	return s
}

// metadataFromPB returns the Struct as compact JSON; nil for no Struct.
func metadataFromPB(v *keyplane.Validation, s *structpb.Struct) json.RawMessage {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s.AsMap()) // not protojson, whose output is deliberately unstable
	if err != nil {
		v.Add("metadata", "%v", err)
	}
	return b
}

func policiesToPB(in []keyplane.RateLimitPolicy) *pb.RateLimitPolicies {
	if in == nil {
		return nil
	}
	out := &pb.RateLimitPolicies{Policies: make([]*pb.RateLimitPolicy, len(in))}
	for i, p := range in {
		out.Policies[i] = &pb.RateLimitPolicy{Name: p.Name, Limit: p.Limit, WindowSeconds: p.WindowSeconds, Algorithm: algorithmToPB[p.Algorithm]}
		if p.Burst > 0 {
			out.Policies[i].Burst = &p.Burst
		}
	}
	return out
}

func policiesFromPB(v *keyplane.Validation, in *pb.RateLimitPolicies) []keyplane.RateLimitPolicy {
	if in == nil {
		return nil
	}
	out := make([]keyplane.RateLimitPolicy, len(in.Policies))
	for i, p := range in.Policies {
		out[i] = keyplane.RateLimitPolicy{Name: p.Name, Limit: p.Limit, WindowSeconds: p.WindowSeconds,
			Algorithm: enumFromPB(v, "rate_limits.policies["+strconv.Itoa(i)+"].algorithm", p.Algorithm, algorithmFromPB)}
		if p.Burst != nil {
			out[i].Burst = *p.Burst
			if *p.Burst < 1 {
				out[i].Burst = -1 // the service names the field
			}
		}
	}
	return out
}

func quotaToPB(q *keyplane.Quota) *pb.Quota {
	if q == nil {
		return nil
	}
	return &pb.Quota{Limit: q.Limit, Period: periodToPB[q.Period], ResetDay: int32(q.ResetDay), Shared: q.Shared}
}

func quotaFromPB(v *keyplane.Validation, q *pb.Quota) *keyplane.Quota {
	if q == nil {
		return nil
	}
	return &keyplane.Quota{Limit: q.Limit, Period: enumFromPB(v, "quota.period", q.Period, periodFromPB), ResetDay: int(q.ResetDay), Shared: q.Shared}
}

func keyToPB(k *keyplane.Key, now time.Time) *pb.Key {
	cidrs := make([]string, len(k.AllowedCIDRs))
	for i, p := range k.AllowedCIDRs {
		cidrs[i] = p.String()
	}
	return &pb.Key{
		Id: k.ID, AccountId: k.AccountID, Name: k.Name, Environment: environmentToPB[k.Environment], Hint: k.Hint,
		Status: keyStatusToPB[k.Status(now)], Scopes: k.Scopes, AllowedCidrs: cidrs,
		RateLimits: policiesToPB(k.RateLimits), Quota: quotaToPB(k.Quota), Metadata: metadataToPB(k.Metadata),
		Enabled: k.Enabled, CreatedAt: timestamppb.New(k.CreatedAt), UpdatedAt: timestamppb.New(k.UpdatedAt),
		ExpiresAt: timestamp(k.ExpiresAt), RevokedAt: timestamp(k.RevokedAt), LastUsedAt: timestamp(k.LastUsedAt),
		RolledFromId: k.RolledFromID, RolledToId: k.RolledToID,
	}
}

func accountToPB(a *keyplane.Account) *pb.Account {
	return &pb.Account{Id: a.ID, Name: a.Name, Plan: a.Plan, AllowedScopes: a.AllowedScopes, Status: accountStatusToPB[a.Status],
		CreatedAt: timestamppb.New(a.CreatedAt), UpdatedAt: timestamppb.New(a.UpdatedAt)}
}
