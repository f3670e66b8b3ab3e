package keyplane

import "context"

// Actor is who is calling: an operator token, or a portal member who acts
// for one account only.
type Actor struct {
	Kind       string // "token", "member" or "system"
	ID         string
	Role       Role       // for tokens
	AccountID  string     // set for members: they see only this account
	MemberRole MemberRole // for members
	SessionID  string     // for members: the portal session acting, if any
}

// CanSee reports whether the actor may see an account's resources. Callers turn
// a false into ENOTFOUND so another account's ids are indistinguishable from
// ids that do not exist.
func (a Actor) CanSee(accountID string) bool {
	return a.AccountID == "" || a.AccountID == accountID
}

type actorKey struct{}

// NewContextWithActor returns a context that carries the actor.
func NewContextWithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFromContext returns the actor, and false when there is none.
func ActorFromContext(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}
