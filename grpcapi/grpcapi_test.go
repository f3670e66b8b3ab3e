package grpcapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"github.com/keyplane/keyplane/gen/keyplane/v1/keyplanev1connect"
	"github.com/keyplane/keyplane/grpcapi"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// harness is a real server on 127.0.0.1 serving the HTTP API and the gRPC
// API on one port, over HTTP/1.1 and h2c, as keyplane serve does.
type harness struct {
	t             *testing.T
	url           string
	admin, verify string // operator tokens of role admin and verify
	client        *http.Client
	logs          *syncBuffer // the server's log, debug level up
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// testRules are the route rules of the harness's forward-auth gate, which
// answers Envoy's ext_authz.
const testRules = `unmatched: deny
routes:
  - match: GET /things/{id}
    scope: things:read
  - match: POST /things
    scope: things:write
`

func newHarness(t *testing.T) *harness {
	t.Helper()
	store := teststore.New(t)
	limiter := ratelimit.New()
	t.Cleanup(limiter.Close)
	quotas := quota.New(store, quota.Config{})
	t.Cleanup(func() { quotas.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Limiter: limiter, Quotas: quotas})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rules, err := routes.Parse("rules.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	gate := admit.NewGate(admit.GateConfig{Service: svc, Rules: routes.Static(rules), Logger: log})
	mux := http.NewServeMux()
	grpcapi.New(grpcapi.Config{Service: svc, Gate: gate, Logger: log}).Register(mux)
	mux.Handle("/", httpapi.New(httpapi.Config{Service: svc, Store: store, Version: "test", Logger: log, Gate: gate}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)

	sys := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	admin, err := svc.CreateToken(sys, service.TokenInput{Name: "admin", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	verify, err := svc.CreateToken(sys, service.TokenInput{Name: "gateway", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	// gRPC needs HTTP/2: h2c, as grpcurl -plaintext speaks it.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, url: srv.URL, admin: admin.Plaintext, verify: verify.Plaintext, client: &http.Client{Transport: tr}, logs: logs}
}

// bearer adds an Authorization header to every call.
func bearer(token string) connect.Option {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if token != "" {
				req.Header().Set("Authorization", "Bearer "+token)
			}
			return next(ctx, req)
		}
	}))
}

func (h *harness) keys(token string, opts ...connect.ClientOption) keyplanev1connect.KeyServiceClient {
	return keyplanev1connect.NewKeyServiceClient(h.client, h.url, append(opts, bearer(token))...)
}

func (h *harness) verifier(token string, opts ...connect.ClientOption) keyplanev1connect.VerifyServiceClient {
	return keyplanev1connect.NewVerifyServiceClient(h.client, h.url, append(opts, bearer(token))...)
}

func (h *harness) accounts(token string, opts ...connect.ClientOption) keyplanev1connect.AccountServiceClient {
	return keyplanev1connect.NewAccountServiceClient(h.client, h.url, append(opts, bearer(token))...)
}

func (h *harness) account(scopes ...string) string {
	h.t.Helper()
	res, err := h.accounts(h.admin).CreateAccount(context.Background(), connect.NewRequest(&pb.CreateAccountRequest{Name: "Acme", AllowedScopes: scopes}))
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Msg.Account.Id
}

func (h *harness) key(in *pb.CreateKeyRequest) *pb.CreateKeyResponse {
	h.t.Helper()
	if in.Name == "" {
		in.Name = "test"
	}
	res, err := h.keys(h.admin).CreateKey(context.Background(), connect.NewRequest(in))
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Msg
}

func (h *harness) verifyKey(in *pb.VerifyRequest) *pb.VerifyResponse {
	h.t.Helper()
	res, err := h.verifier(h.verify).Verify(context.Background(), connect.NewRequest(in))
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Msg
}

// wantCode fails unless err is a connect error of code.
func wantCode(t *testing.T, err error, code connect.Code) *connect.Error {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("error %v, want code %v", err, code)
	}
	return ce
}

func ptr[T any](v T) *T { return &v }

func TestKeyLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	acc := h.account("enrichment:*")
	meta, _ := structpb.NewStruct(map[string]any{"customer": 42.0})
	created := h.key(&pb.CreateKeyRequest{AccountId: acc, Name: "production", Scopes: []string{"enrichment:read"}, Metadata: meta,
		Environment: pb.Environment_ENVIRONMENT_TEST})
	k := created.Key
	if !strings.HasPrefix(created.Plaintext, "kp_test_") || k.Status != pb.KeyStatus_KEY_STATUS_ACTIVE || k.AccountId != acc ||
		k.Environment != pb.Environment_ENVIRONMENT_TEST || k.Metadata.Fields["customer"].GetNumberValue() != 42 || k.RateLimits != nil {
		t.Fatalf("created: %v", created)
	}
	keys := h.keys(h.admin)

	got, err := keys.GetKey(ctx, connect.NewRequest(&pb.GetKeyRequest{Id: k.Id}))
	if err != nil || got.Msg.Key.Name != "production" || got.Msg.Key.Hint != k.Hint {
		t.Fatalf("get: %v %v", got, err)
	}
	if strings.Contains(got.Msg.String(), created.Plaintext) {
		t.Fatal("get returned the plaintext")
	}

	up, err := keys.UpdateKey(ctx, connect.NewRequest(&pb.UpdateKeyRequest{Id: k.Id, Name: ptr("renamed"),
		RateLimits: &pb.RateLimitPolicies{Policies: []*pb.RateLimitPolicy{{Name: "default", Limit: ptr[int64](100), WindowSeconds: 60, Algorithm: pb.Algorithm_ALGORITHM_SLIDING_WINDOW}}},
		ExpiresAt:  timestamppb.New(time.Now().Add(time.Hour))}))
	if err != nil || up.Msg.Key.Name != "renamed" || len(up.Msg.Key.RateLimits.GetPolicies()) != 1 || up.Msg.Key.ExpiresAt == nil || len(up.Msg.Key.Scopes) != 1 {
		t.Fatalf("update: %v %v", up, err)
	}
	up, err = keys.UpdateKey(ctx, connect.NewRequest(&pb.UpdateKeyRequest{Id: k.Id, UsePlanRateLimits: true, ClearExpiresAt: true, Scopes: &pb.StringList{}}))
	if err != nil || up.Msg.Key.RateLimits != nil || up.Msg.Key.ExpiresAt != nil || len(up.Msg.Key.Scopes) != 0 || up.Msg.Key.Name != "renamed" {
		t.Fatalf("update back to the plan's: %v %v", up, err)
	}
	_, err = keys.UpdateKey(ctx, connect.NewRequest(&pb.UpdateKeyRequest{Id: k.Id, UsePlanQuota: true, Quota: &pb.Quota{Limit: 1, Period: pb.QuotaPeriod_QUOTA_PERIOD_DAY}}))
	wantCode(t, err, connect.CodeInvalidArgument)

	dis, err := keys.DisableKey(ctx, connect.NewRequest(&pb.DisableKeyRequest{Id: k.Id}))
	if err != nil || dis.Msg.Key.Status != pb.KeyStatus_KEY_STATUS_DISABLED {
		t.Fatalf("disable: %v %v", dis, err)
	}
	if v := h.verifyKey(&pb.VerifyRequest{Key: created.Plaintext}); v.Code != pb.VerifyCode_VERIFY_CODE_DISABLED || v.Valid {
		t.Fatalf("disabled key verifies: %v", v)
	}
	en, err := keys.EnableKey(ctx, connect.NewRequest(&pb.EnableKeyRequest{Id: k.Id}))
	if err != nil || en.Msg.Key.Status != pb.KeyStatus_KEY_STATUS_ACTIVE {
		t.Fatalf("enable: %v %v", en, err)
	}

	rolled, err := keys.RollKey(ctx, connect.NewRequest(&pb.RollKeyRequest{Id: k.Id, OverlapSeconds: 3600}))
	if err != nil || rolled.Msg.Previous.Status != pb.KeyStatus_KEY_STATUS_ROLLING || rolled.Msg.Key.RolledFromId != k.Id || rolled.Msg.Plaintext == "" {
		t.Fatalf("roll: %v %v", rolled, err)
	}
	for _, p := range []string{created.Plaintext, rolled.Msg.Plaintext} {
		if v := h.verifyKey(&pb.VerifyRequest{Key: p}); v.Code != pb.VerifyCode_VERIFY_CODE_VALID {
			t.Fatalf("during the overlap: %v", v)
		}
	}
	_, err = keys.RollKey(ctx, connect.NewRequest(&pb.RollKeyRequest{Id: k.Id}))
	wantCode(t, err, connect.CodeFailedPrecondition) // already rolled
	_, err = keys.RollKey(ctx, connect.NewRequest(&pb.RollKeyRequest{Id: rolled.Msg.Key.Id, OverlapSeconds: 1 << 62}))
	wantCode(t, err, connect.CodeInvalidArgument)

	rev, err := keys.RevokeKey(ctx, connect.NewRequest(&pb.RevokeKeyRequest{Id: rolled.Msg.Key.Id}))
	if err != nil || rev.Msg.Key.Status != pb.KeyStatus_KEY_STATUS_REVOKED || rev.Msg.Key.RevokedAt == nil {
		t.Fatalf("revoke: %v %v", rev, err)
	}
	if v := h.verifyKey(&pb.VerifyRequest{Key: rolled.Msg.Plaintext}); v.Code != pb.VerifyCode_VERIFY_CODE_REVOKED {
		t.Fatalf("revoked key: %v", v)
	}
	_, err = keys.EnableKey(ctx, connect.NewRequest(&pb.EnableKeyRequest{Id: rolled.Msg.Key.Id}))
	wantCode(t, err, connect.CodeFailedPrecondition) // revocation is final

	list, err := keys.ListKeys(ctx, connect.NewRequest(&pb.ListKeysRequest{AccountId: acc, Limit: 1}))
	if err != nil || len(list.Msg.Keys) != 1 || list.Msg.NextCursor == "" || list.Msg.Keys[0].Id != rolled.Msg.Key.Id {
		t.Fatalf("list: %v %v", list, err)
	}
	list, err = keys.ListKeys(ctx, connect.NewRequest(&pb.ListKeysRequest{AccountId: acc, Status: pb.KeyStatus_KEY_STATUS_ROLLING}))
	if err != nil || len(list.Msg.Keys) != 1 || list.Msg.Keys[0].Id != k.Id {
		t.Fatalf("list rolling: %v %v", list, err)
	}
	_, err = keys.ListKeys(ctx, connect.NewRequest(&pb.ListKeysRequest{AccountId: acc, Limit: 1000}))
	wantCode(t, err, connect.CodeInvalidArgument)
}

func TestErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	keys := h.keys(h.admin)
	acc := h.account("enrichment:*")

	for _, id := range []string{"key_01jd2x5y6z7a8b9c0d1e2f3g4h", "nonsense"} {
		_, err := keys.GetKey(ctx, connect.NewRequest(&pb.GetKeyRequest{Id: id}))
		wantCode(t, err, connect.CodeNotFound)
	}
	_, err := keys.CreateKey(ctx, connect.NewRequest(&pb.CreateKeyRequest{AccountId: "acc_01jd2x5y6z7a8b9c0d1e2f3g4h", Name: "x"}))
	wantCode(t, err, connect.CodeNotFound)

	// Every invalid field is named, as a google.rpc.BadRequest detail.
	_, err = keys.CreateKey(ctx, connect.NewRequest(&pb.CreateKeyRequest{AccountId: acc, Name: "", Scopes: []string{"billing:read"}, AllowedCidrs: []string{"nonsense"}}))
	ce := wantCode(t, err, connect.CodeInvalidArgument)
	var fields []string
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range v.(*errdetails.BadRequest).FieldViolations {
			fields = append(fields, f.Field)
		}
	}
	if got := strings.Join(fields, ","); !strings.Contains(got, "name") || !strings.Contains(got, "scopes[0]") || !strings.Contains(got, "allowed_cidrs[0]") {
		t.Fatalf("field violations %q (%v)", got, ce)
	}
	_, err = keys.CreateKey(ctx, connect.NewRequest(&pb.CreateKeyRequest{AccountId: acc, Name: "x", Environment: 7}))
	wantCode(t, err, connect.CodeInvalidArgument)

	// The account's cap on active keys.
	for range service.DefaultMaxActiveKeys {
		h.key(&pb.CreateKeyRequest{AccountId: acc})
	}
	_, err = keys.CreateKey(ctx, connect.NewRequest(&pb.CreateKeyRequest{AccountId: acc, Name: "one too many"}))
	wantCode(t, err, connect.CodeResourceExhausted)

	_, err = h.verifier(h.verify).Verify(ctx, connect.NewRequest(&pb.VerifyRequest{Key: "kp_live_x", Ip: "not-an-ip", Cost: ptr[int64](-1)}))
	ce = wantCode(t, err, connect.CodeInvalidArgument)
	if !strings.Contains(ce.Message(), "ip") {
		t.Fatalf("message %q", ce.Message())
	}
	_, err = h.verifier(h.verify).Verify(ctx, connect.NewRequest(&pb.VerifyRequest{Key: strings.Repeat("k", 2<<20)}))
	wantCode(t, err, connect.CodeResourceExhausted) // over the 1 MiB message limit
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, token := range []string{"", "kpt_nonsense", h.admin + "x"} {
		_, err := h.verifier(token).Verify(ctx, connect.NewRequest(&pb.VerifyRequest{Key: "kp_live_x"}))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = h.accounts(token).ListAccounts(ctx, connect.NewRequest(&pb.ListAccountsRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	// A verify token verifies, and nothing else.
	if _, err := h.verifier(h.verify).Verify(ctx, connect.NewRequest(&pb.VerifyRequest{Key: "kp_live_x"})); err != nil {
		t.Fatal(err)
	}
	_, err := h.keys(h.verify).GetKey(ctx, connect.NewRequest(&pb.GetKeyRequest{Id: "key_01jd2x5y6z7a8b9c0d1e2f3g4h"}))
	ce := wantCode(t, err, connect.CodePermissionDenied)
	if !strings.Contains(ce.Message(), "keyplane.v1.VerifyService") {
		t.Fatalf("message %q", ce.Message())
	}
	_, err = h.accounts(h.verify).CreateAccount(ctx, connect.NewRequest(&pb.CreateAccountRequest{Name: "x"}))
	wantCode(t, err, connect.CodePermissionDenied)
	// An admin token verifies too.
	if _, err := h.verifier(h.admin).Verify(ctx, connect.NewRequest(&pb.VerifyRequest{Key: "kp_live_x"})); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	h := newHarness(t)
	acc := h.account("enrichment:*")
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	meta, _ := structpb.NewStruct(map[string]any{"tier": "gold"})
	k := h.key(&pb.CreateKeyRequest{AccountId: acc, Scopes: []string{"enrichment:read"}, Metadata: meta, ExpiresAt: timestamppb.New(expires),
		AllowedCidrs: []string{"203.0.113.0/24"},
		RateLimits:   &pb.RateLimitPolicies{Policies: []*pb.RateLimitPolicy{{Name: "default", Limit: ptr[int64](2), WindowSeconds: 60, Algorithm: pb.Algorithm_ALGORITHM_TOKEN_BUCKET}}},
		Quota:        &pb.Quota{Limit: 100, Period: pb.QuotaPeriod_QUOTA_PERIOD_DAY}})

	v := h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext, Scope: "enrichment:read", Ip: "203.0.113.7", Endpoint: "GET /things"})
	if !v.Valid || v.Code != pb.VerifyCode_VERIFY_CODE_VALID || v.KeyId != k.Key.Id || v.AccountId != acc || v.Name != "test" ||
		v.Environment != pb.Environment_ENVIRONMENT_LIVE || v.Scopes[0] != "enrichment:read" || v.Metadata.Fields["tier"].GetStringValue() != "gold" ||
		!v.ExpiresAt.AsTime().Equal(expires) || v.RetryAfterSeconds != 0 {
		t.Fatalf("valid: %v", v)
	}
	if rl := v.Ratelimit; rl == nil || rl.Policy != "default" || rl.Limit != 2 || rl.Remaining != 1 || rl.WindowSeconds != 60 {
		t.Fatalf("rate limit state: %v", v.Ratelimit)
	}
	if q := v.Quota; q == nil || q.Limit != 100 || q.Used != 1 || q.Remaining != 99 || q.Period != pb.QuotaPeriod_QUOTA_PERIOD_DAY || q.ResetsAt == nil {
		t.Fatalf("quota state: %v", v.Quota)
	}
	for _, tc := range []struct {
		req  *pb.VerifyRequest
		code pb.VerifyCode
	}{
		{&pb.VerifyRequest{Key: k.Plaintext, Scope: "enrichment:write", Ip: "203.0.113.7"}, pb.VerifyCode_VERIFY_CODE_INSUFFICIENT_SCOPE},
		{&pb.VerifyRequest{Key: k.Plaintext, Ip: "198.51.100.1"}, pb.VerifyCode_VERIFY_CODE_FORBIDDEN},
		{&pb.VerifyRequest{Key: "kp_live_nonsense"}, pb.VerifyCode_VERIFY_CODE_NOT_FOUND},
	} {
		if v := h.verifyKey(tc.req); v.Valid || v.Code != tc.code {
			t.Fatalf("%v: %v", tc.req, v)
		}
	}
	if v := h.verifyKey(&pb.VerifyRequest{Key: "kp_live_nonsense"}); v.KeyId != "" || v.Metadata != nil {
		t.Fatalf("NOT_FOUND tells more than its code: %v", v)
	}
	h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext, Ip: "203.0.113.7"})
	v = h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext, Ip: "203.0.113.7"})
	if v.Valid || v.Code != pb.VerifyCode_VERIFY_CODE_RATE_LIMITED || v.RetryAfterSeconds < 1 || v.Ratelimit.GetRemaining() != 0 {
		t.Fatalf("over the limit: %v", v)
	}
	// Cost 0 reports what is left without charging.
	if v := h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext, Ip: "203.0.113.7", Cost: ptr[int64](0)}); !v.Valid || v.Quota.GetUsed() != 2 {
		t.Fatalf("cost 0: %v", v)
	}
}

// The three protocols connect-go serves, on the same port as the HTTP API.
func TestProtocols(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	k := h.key(&pb.CreateKeyRequest{AccountId: acc})
	for name, opts := range map[string][]connect.ClientOption{
		"grpc":          {connect.WithGRPC()},
		"grpc-web":      {connect.WithGRPCWeb()},
		"connect":       nil,
		"connect+json":  {connect.WithProtoJSON()},
		"grpc+gzip":     {connect.WithGRPC(), connect.WithSendGzip()},
		"grpc-web+json": {connect.WithGRPCWeb(), connect.WithProtoJSON()},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := h.verifier(h.verify, opts...).Verify(context.Background(), connect.NewRequest(&pb.VerifyRequest{Key: k.Plaintext}))
			if err != nil || res.Msg.Code != pb.VerifyCode_VERIFY_CODE_VALID {
				t.Fatalf("%v %v", res, err)
			}
			_, err = h.keys(h.verify, opts...).GetKey(context.Background(), connect.NewRequest(&pb.GetKeyRequest{Id: k.Key.Id}))
			wantCode(t, err, connect.CodePermissionDenied)
		})
	}
	// The HTTP API answers on the same port, over HTTP/1.1 as before.
	req, _ := http.NewRequest("POST", h.url+"/v1/verify", strings.NewReader(`{"key":"`+k.Plaintext+`"}`))
	req.Header.Set("Authorization", "Bearer "+h.verify)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"code":"VALID"`) || resp.ProtoMajor != 1 {
		t.Fatalf("HTTP verify: %d %s", resp.StatusCode, body)
	}
}

func TestAccounts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	accounts := h.accounts(h.admin)
	created, err := accounts.CreateAccount(ctx, connect.NewRequest(&pb.CreateAccountRequest{Name: "Acme", AllowedScopes: []string{"a:*"}}))
	if err != nil || created.Msg.Account.Status != pb.AccountStatus_ACCOUNT_STATUS_ACTIVE || created.Msg.Account.Plan != "default" {
		t.Fatalf("create: %v %v", created, err)
	}
	id := created.Msg.Account.Id
	got, err := accounts.GetAccount(ctx, connect.NewRequest(&pb.GetAccountRequest{Id: id}))
	if err != nil || got.Msg.Account.Name != "Acme" {
		t.Fatalf("get: %v %v", got, err)
	}
	k := h.key(&pb.CreateKeyRequest{AccountId: id})
	up, err := accounts.UpdateAccount(ctx, connect.NewRequest(&pb.UpdateAccountRequest{Id: id, Name: ptr("Acme Inc"), Status: pb.AccountStatus_ACCOUNT_STATUS_SUSPENDED}))
	if err != nil || up.Msg.Account.Name != "Acme Inc" || up.Msg.Account.Status != pb.AccountStatus_ACCOUNT_STATUS_SUSPENDED || up.Msg.Account.AllowedScopes[0] != "a:*" {
		t.Fatalf("update: %v %v", up, err)
	}
	if v := h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext}); v.Code != pb.VerifyCode_VERIFY_CODE_DISABLED {
		t.Fatalf("key of a suspended account: %v", v)
	}
	h.account()
	list, err := accounts.ListAccounts(ctx, connect.NewRequest(&pb.ListAccountsRequest{Limit: 1}))
	if err != nil || len(list.Msg.Accounts) != 1 || list.Msg.NextCursor == "" {
		t.Fatalf("list: %v %v", list, err)
	}
	_, err = accounts.GetAccount(ctx, connect.NewRequest(&pb.GetAccountRequest{Id: "acc_01jd2x5y6z7a8b9c0d1e2f3g4h"}))
	wantCode(t, err, connect.CodeNotFound)
	_, err = accounts.UpdateAccount(ctx, connect.NewRequest(&pb.UpdateAccountRequest{Id: id, Plan: ptr("no-such-plan")}))
	wantCode(t, err, connect.CodeInvalidArgument)
}

// Changes made over gRPC are audited like those over HTTP: actor, address,
// user agent and request id.
func TestAuditOverGRPC(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	req := connect.NewRequest(&pb.CreateKeyRequest{AccountId: acc, Name: "audited"})
	req.Header().Set("X-Request-Id", "grpc-test-1")
	req.Header().Set("User-Agent", "audit-test/1.0")
	res, err := h.keys(h.admin).CreateKey(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header().Get("X-Request-Id"); got != "grpc-test-1" {
		t.Fatalf("response request id %q", got)
	}
	_, err = h.keys(h.admin).GetKey(context.Background(), connect.NewRequest(&pb.GetKeyRequest{Id: "nonsense"}))
	if ce := wantCode(t, err, connect.CodeNotFound); ce.Meta().Get("X-Request-Id") == "" {
		t.Fatal("an error without a request id")
	}

	hreq, _ := http.NewRequest("GET", h.url+"/v1/audit?key_id="+res.Msg.Key.Id, nil)
	hreq.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Data []struct {
			Type      string `json:"type"`
			IP        string `json:"ip"`
			UserAgent string `json:"user_agent"`
			RequestID string `json:"request_id"`
			Actor     struct {
				Kind string `json:"kind"`
			} `json:"actor"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Data) != 1 {
		t.Fatalf("audit: %v %+v", err, page)
	}
	ev := page.Data[0]
	if ev.Type != "key.created" || ev.IP != "127.0.0.1" || ev.UserAgent != "audit-test/1.0" || ev.RequestID != "grpc-test-1" || ev.Actor.Kind != "token" {
		t.Fatalf("audit event %+v", ev)
	}
}

// Each call is logged like an HTTP request: procedure, code, request id;
// never the key or the token.
func TestCallLog(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	k := h.key(&pb.CreateKeyRequest{AccountId: acc})
	h.verifyKey(&pb.VerifyRequest{Key: k.Plaintext})
	logs := h.logs.String()
	for _, want := range []string{"procedure=/keyplane.v1.KeyService/CreateKey", "code=ok", "level=DEBUG msg=\"grpc call\" procedure=/keyplane.v1.VerifyService/Verify", "request_id="} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, k.Plaintext) || strings.Contains(logs, h.admin) {
		t.Fatal("a key or token reached the log")
	}
}
