package service

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/password"
	"github.com/oklog/ulid/v2"
)

// DefaultMaxActiveKeys is the cap on an account's active keys when its plan sets none.
const DefaultMaxActiveKeys = 25

// MaxRollOverlap is the longest a rolled key may keep working beside its successor.
const MaxRollOverlap = 7 * 24 * time.Hour

// Config tunes a Service; zero values take the defaults.
type Config struct {
	KeyPrefix     string           // deployment prefix of keys, default "kp"
	MaxActiveKeys int              // per account, default 25
	Now           func() time.Time // the clock; tests inject their own
	Limiter       keyplane.Limiter // rate limits; nil allows all
	// Quotas counts quota usage; nil ignores quotas.
	Quotas keyplane.QuotaMeter
	// Throttle refuses client IPs that keep presenting bad keys; nil never does.
	Throttle keyplane.FailureThrottle
	// Usage counts each verification of a found key; nil meters nothing.
	Usage keyplane.UsageRecorder
	// UsageReports answers the usage analytics; nil answers them with 503.
	UsageReports keyplane.UsageReporter
	// VerifyFailures counts failed verifications for the audit log; nil
	// records none.
	VerifyFailures keyplane.VerifyFailureRecorder

	// Records is where verification reads; a cache in front of the store.
	// Nil reads the store directly.
	Records keyplane.RecordSource
	// Tokens is where operator tokens are looked up; a cache in front of the
	// store. Nil reads the store directly.
	Tokens keyplane.TokenSource
	// Cache is told of each change this instance makes, before the call
	// returns, so the instance never verifies against its own stale copy.
	Cache keyplane.ChangeListener
	// Bus carries each change to the other instances; nil for one instance.
	Bus keyplane.ChangeBus

	// Portal members: whether anyone may sign up (creating an account), the
	// cost of password hashes (default password.Default) and how long
	// sessions last (default DefaultSessionIdle, DefaultSessionMax).
	Signup         bool
	PasswordParams password.Params
	SessionIdle    time.Duration
	SessionMax     time.Duration

	// WebhookSecrets seals endpoint secrets; nil refuses webhook changes
	// (the server has no --secrets-key-file).
	WebhookSecrets keyplane.SecretSealer
	// WebhooksAllowPrivate admits http URLs and private addresses.
	WebhooksAllowPrivate bool
	// WebhookWake is called after a change that may have raised webhook
	// events, to wake this instance's dispatcher; nil waits for its poll.
	WebhookWake func()

	// LeakAction is what happens to a key reported as leaked; default
	// keyplane.LeakRevoke.
	LeakAction keyplane.LeakAction
}

// Service implements keyplane's operations on a store.
type Service struct {
	store    keyplane.Store
	prefix   string
	maxKeys  int
	clock    func() time.Time
	limiter  keyplane.Limiter
	quotas   keyplane.QuotaMeter
	throttle keyplane.FailureThrottle
	usage    keyplane.UsageRecorder
	reports  keyplane.UsageReporter
	failures keyplane.VerifyFailureRecorder
	records  keyplane.RecordSource
	cache    keyplane.ChangeListener
	bus      keyplane.ChangeBus
	tokens   keyplane.TokenSource

	signup                  bool
	passwords               password.Params
	sessionIdle, sessionMax time.Duration
	signins                 *signinThrottle
	dummyOnce               sync.Once
	dummy                   string

	secrets              keyplane.SecretSealer
	webhooksAllowPrivate bool
	webhookWake          func()

	leakAction keyplane.LeakAction
}

// New returns a Service on store.
func New(store keyplane.Store, cfg Config) (*Service, error) {
	s := &Service{store: store, prefix: cfg.KeyPrefix, maxKeys: cfg.MaxActiveKeys, clock: cfg.Now, limiter: cfg.Limiter, quotas: cfg.Quotas,
		records: cfg.Records, tokens: cfg.Tokens, cache: cfg.Cache, bus: cfg.Bus, throttle: cfg.Throttle, usage: cfg.Usage, reports: cfg.UsageReports,
		failures: cfg.VerifyFailures}
	if s.records == nil {
		s.records = store
	}
	if s.tokens == nil {
		s.tokens = store
	}
	s.signup, s.passwords, s.sessionIdle, s.sessionMax = cfg.Signup, cfg.PasswordParams, cfg.SessionIdle, cfg.SessionMax
	s.secrets, s.webhooksAllowPrivate, s.webhookWake = cfg.WebhookSecrets, cfg.WebhooksAllowPrivate, cfg.WebhookWake
	if s.passwords == (password.Params{}) {
		s.passwords = password.Default
	}
	if s.sessionIdle <= 0 {
		s.sessionIdle = DefaultSessionIdle
	}
	if s.sessionMax <= 0 {
		s.sessionMax = DefaultSessionMax
	}
	s.signins = newSigninThrottle()
	s.leakAction = cfg.LeakAction
	if s.leakAction == "" {
		s.leakAction = keyplane.LeakRevoke
	}
	if !s.leakAction.Valid() {
		return nil, fmt.Errorf("leak action %q: want revoke, disable or notify", s.leakAction)
	}
	if s.prefix == "" {
		s.prefix = apikey.DefaultPrefix
	}
	if !apikey.ValidPrefix(s.prefix) {
		return nil, fmt.Errorf("key prefix %q: want 2 to 10 lowercase letters and digits, starting with a letter", s.prefix)
	}
	if s.prefix == apikey.TokenPrefix {
		return nil, fmt.Errorf("key prefix %q is reserved for operator tokens", s.prefix)
	}
	if s.maxKeys <= 0 {
		s.maxKeys = DefaultMaxActiveKeys
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	return s, nil
}

// now is the clock in UTC at the precision both stores keep, so what a call
// returns equals what a later read returns.
func (s *Service) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// newID returns a time-ordered id such as "key_01J9Z…": lists sort by it.
func newID(kind string) string { return kind + "_" + strings.ToLower(ulid.Make().String()) }

// actor returns the caller; a context without one is refused, so a missing
// authentication step can never grant access.
func actor(ctx context.Context) (keyplane.Actor, error) {
	a, ok := keyplane.ActorFromContext(ctx)
	if !ok {
		return a, keyplane.Errorf(keyplane.EUNAUTHORIZED, "authentication required")
	}
	return a, nil
}

// requireOperator refuses members: only operator tokens manage accounts and tokens.
func requireOperator(ctx context.Context) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if a.Kind != "token" && a.Kind != "system" || a.AccountID != "" {
		return keyplane.Errorf(keyplane.EFORBIDDEN, "only operators may do this")
	}
	return requireManager(a)
}

// requireManager refuses tokens that may only verify: transports check the
// role too, but the rule belongs here, where every transport passes.
func requireManager(a keyplane.Actor) error {
	if a.Kind == "token" && a.Role != keyplane.RoleAdmin {
		return keyplane.Errorf(keyplane.EFORBIDDEN, "this token has role %s; it may only verify keys", a.Role)
	}
	return nil
}

// authorizeAccount returns ENOTFOUND for an account the caller may not see.
func authorizeAccount(ctx context.Context, accountID string) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if err := requireManager(a); err != nil {
		return err
	}
	if !a.CanSee(accountID) {
		return keyplane.Errorf(keyplane.ENOTFOUND, "account %q not found", accountID)
	}
	return nil
}

// idPattern is the shape of the ids keyplane makes: kind, "_", a lowercase ULID.
var idPattern = regexp.MustCompile(`^[a-z]{3}_[0-9a-z]{26}$`)

// validID reports whether id could be one of ours. Others are answered as
// not found without being looked up or echoed: a key pasted where an id
// belongs must not come back in an error message.
func validID(id string) bool { return idPattern.MatchString(id) }

// listForOperator is a list only operators may read, with the page size
// bounded.
func listForOperator[T any](ctx context.Context, page keyplane.Page, list func(context.Context, keyplane.Page) ([]T, string, error)) ([]T, string, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(page.Limit)
	if err != nil {
		return nil, "", err
	}
	page.Limit = limit
	return list(ctx, page)
}

// pageLimit applies the default and bounds of list page sizes.
func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return 20, nil
	case limit < 1 || limit > 100:
		return 0, keyplane.Invalid("limit", "must be between 1 and 100")
	}
	return limit, nil
}

// changed tells this instance's cache, then every other instance, that a
// committed write made cached records out of date.
func (s *Service) changed(ctx context.Context, changes ...keyplane.Change) {
	for _, c := range changes {
		if s.cache != nil {
			s.cache.ApplyChange(c)
		}
		if s.bus != nil {
			s.bus.Publish(ctx, c)
		}
	}
}
