package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
)

// Verify answers whether a key may make a request. Checks run in the order of
// the product contract and the first failure wins; an error means the answer
// could not be known (the store is down), never that the key is bad.
func (s *Service) Verify(ctx context.Context, req keyplane.VerifyRequest) (keyplane.VerifyResult, error) {
	// One reading of the clock for the whole verification: expiry, limits,
	// throttling and metering see the same instant, and each reading costs.
	now := s.clock()
	throttled := s.throttle != nil && req.IP.IsValid()
	if throttled {
		if wait := s.throttle.Blocked(req.IP, now); wait > 0 {
			// This address kept presenting bad keys: refused before any lookup.
			return keyplane.VerifyResult{Code: keyplane.VerifyRateLimited, RetryAfter: wait}, nil
		}
	}
	res, err := s.verify(ctx, req, now)
	if s.usage != nil && err == nil && res.Key != nil {
		s.usage.RecordVerification(res.Key, req.Endpoint, now, res.Code)
	}
	if throttled && err == nil {
		switch res.Code {
		case keyplane.VerifyNotFound, keyplane.VerifyRevoked, keyplane.VerifyExpired:
			s.throttle.Failed(req.IP, now)
		}
	}
	if s.failures != nil && err == nil && !res.Valid && keyplane.AuditedFailure(res.Code) {
		s.recordFailure(req, &res, now)
	}
	return res, err
}

// recordFailure hands a failed verification to the audit log's counter.
// Off the valid path: hashing what was presented costs one SHA-256.
func (s *Service) recordFailure(req keyplane.VerifyRequest, res *keyplane.VerifyResult, now time.Time) {
	f := keyplane.VerifyFailure{Time: now, Code: res.Code, IP: req.IP}
	if res.Key != nil {
		f.KeyID, f.AccountID = res.Key.ID, res.Key.AccountID
	} else {
		h := apikey.Hash(req.Key)
		copy(f.KeyHashPrefix[:], h[:])
	}
	s.failures.VerifyFailed(f)
}

func (s *Service) verify(ctx context.Context, req keyplane.VerifyRequest, now time.Time) (keyplane.VerifyResult, error) {
	// A malformed key or a bad checksum never reaches the store.
	if _, ok := apikey.Parse(req.Key, s.prefix); !ok {
		return keyplane.VerifyResult{Code: keyplane.VerifyNotFound}, nil
	}
	rec, err := s.records.VerifyRecord(ctx, apikey.Hash(req.Key))
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return keyplane.VerifyResult{Code: keyplane.VerifyNotFound}, nil
	} else if err != nil {
		return keyplane.VerifyResult{}, err
	}
	return s.check(ctx, rec, req, now)
}

// now is only compared with expiries: no need to truncate.
func (s *Service) check(ctx context.Context, rec *keyplane.VerifyRecord, req keyplane.VerifyRequest, now time.Time) (keyplane.VerifyResult, error) {
	k := &rec.Key
	res := keyplane.VerifyResult{Key: k}
	switch k.Status(now) {
	case keyplane.KeyRevoked:
		res.Code = keyplane.VerifyRevoked
		return res, nil
	case keyplane.KeyExpired:
		res.Code = keyplane.VerifyExpired
		return res, nil
	case keyplane.KeyDisabled:
		res.Code = keyplane.VerifyDisabled
		return res, nil
	}
	if rec.AccountStatus != keyplane.AccountActive {
		res.Code = keyplane.VerifyDisabled
		return res, nil
	}
	if len(k.AllowedCIDRs) > 0 && !ipAllowed(k, req) {
		res.Code = keyplane.VerifyForbidden
		return res, nil
	}
	// The account's and its plan's allowed scopes bound its keys: narrowing
	// either takes effect on keys already issued.
	if req.Scope != "" && (!granted(k.Scopes, req.Scope) || !granted(rec.AccountAllowedScopes, req.Scope) ||
		rec.PlanAllowedScopes != nil && !granted(rec.PlanAllowedScopes, req.Scope)) {
		res.Code = keyplane.VerifyInsufficientScope
		return res, nil
	}
	// The quota is charged first and refunded if a rate limit refuses, so
	// that an exhausted quota costs no rate-limit allowance and a request
	// refused for its rate is not counted against the quota.
	q, subject := rec.QuotaFor()
	if q != nil && s.quotas != nil {
		st, ok, err := s.quotas.Charge(ctx, q, subject, req.Cost, now)
		if err != nil {
			return keyplane.VerifyResult{}, err
		}
		res.Quota = st
		if !ok {
			res.Code, res.RetryAfter = keyplane.VerifyQuotaExceeded, st.ResetsAt.Sub(now)
			return res, nil
		}
	}
	if s.limiter != nil {
		d, err := s.limiter.Check(ctx, rec, req.Cost, now)
		if err != nil {
			// A limiter that cannot answer (fail-closed, Redis down) is an
			// outage, a 503 the caller can tell from a refusal.
			s.refundQuota(&res.Quota, q, subject, req.Cost, now)
			return keyplane.VerifyResult{}, err
		}
		res.RateLimit, res.RetryAfter = d.RateLimit, d.RetryAfter
		if d.Code != keyplane.VerifyValid {
			s.refundQuota(&res.Quota, q, subject, req.Cost, now)
			res.Code = d.Code
			return res, nil
		}
	}
	res.Valid, res.Code = true, keyplane.VerifyValid
	return res, nil
}

// ipAllowed reports whether the request's address lies in one of the key's
// ranges. A request that does not say its address is refused: the key is
// restricted, and "unknown" is not inside any range.
func ipAllowed(k *keyplane.Key, req keyplane.VerifyRequest) bool {
	if !req.IP.IsValid() {
		return false
	}
	ip := req.IP.Unmap()
	for _, p := range k.AllowedCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refundQuota takes back a quota charge, if one was made, and corrects the
// state the result reports.
func (s *Service) refundQuota(state *keyplane.QuotaState, q *keyplane.Quota, subject string, cost int64, now time.Time) {
	if !state.Counted() || cost <= 0 {
		return
	}
	s.quotas.Refund(q, subject, cost, now)
	state.Used -= cost
	state.Remaining = min(state.Remaining+cost, state.Limit)
}
