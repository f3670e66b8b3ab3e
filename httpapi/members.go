package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// MemberBody is a portal member; the password hash is never sent.
type MemberBody struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role" enum:"owner,developer,viewer"`
	Status    string    `json:"status" enum:"active,disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func memberBody(m *keyplane.Member) MemberBody {
	return MemberBody{ID: m.ID, AccountID: m.AccountID, Email: m.Email, Role: string(m.Role), Status: string(m.Status), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// InviteBody is a pending invite; its link is shown only when it is made.
type InviteBody struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role" enum:"owner,developer,viewer"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	InviteURL string    `json:"invite_url,omitempty" doc:"The single-use link that lets the person join; returned only by the call that creates the invite"`
}

func inviteBody(inv *keyplane.Invite) InviteBody {
	return InviteBody{ID: inv.ID, AccountID: inv.AccountID, Email: inv.Email, Role: string(inv.Role), CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}
}

type inviteMemberInput struct {
	AccountPath
	Body struct {
		Email string `json:"email" maxLength:"254" doc:"Who may use the invite; their sign-in email"`
		Role  string `json:"role" enum:"owner,developer,viewer" doc:"owner: everything including members; developer: manages keys; viewer: reads only"`
	}
	origin string
}

// Resolve remembers the request's origin, for the invite link when no
// public portal URL is configured.
func (in *inviteMemberInput) Resolve(ctx huma.Context) []error {
	scheme := "http"
	if ctx.TLS() != nil {
		scheme = "https"
	}
	in.origin = scheme + "://" + ctx.Host()
	return nil
}

type inviteOutput struct {
	Body InviteBody
}

type listMembersInput struct {
	AccountPath
	PageQuery
}

type listMembersOutput struct {
	Body List[MemberBody]
}

type MemberPath struct {
	ID string `path:"id" maxLength:"64" doc:"Member id"`
}

type updateMemberInput struct {
	MemberPath
	Body struct {
		Role   Optional[string] `json:"role,omitempty" enum:"owner,developer,viewer"`
		Status Optional[string] `json:"status,omitempty" enum:"active,disabled" doc:"disabled refuses sign-in and ends the member's sessions"`
	}
}

type memberOutput struct {
	Body MemberBody
}

type listInvitesOutput struct {
	Body struct {
		Data []InviteBody `json:"data"`
	}
}

type changePasswordInput struct {
	MemberPath
	Body struct {
		CurrentPassword string `json:"current_password" maxLength:"1024" doc:"The member's current password"`
		NewPassword     string `json:"new_password" maxLength:"1024" doc:"At least 12 characters"`
	}
}

type issueResetInput struct {
	MemberPath
	origin string
}

// Resolve remembers the request's origin, for the reset link when no
// public portal URL is configured.
func (in *issueResetInput) Resolve(ctx huma.Context) []error {
	scheme := "http"
	if ctx.TLS() != nil {
		scheme = "https"
	}
	in.origin = scheme + "://" + ctx.Host()
	return nil
}

type resetOutput struct {
	Body struct {
		ID        string    `json:"id"`
		MemberID  string    `json:"member_id"`
		Email     string    `json:"email"`
		ExpiresAt time.Time `json:"expires_at"`
		ResetURL  string    `json:"reset_url" doc:"The single-use link, valid for one hour, that lets the member set a new password; shown only here"`
	}
}

type InvitePath struct {
	ID string `path:"id" maxLength:"64" doc:"Invite id"`
}

func (s *Server) memberRoutes() {
	tags := []string{"Members"}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "inviteMember", Method: http.MethodPost, Path: "/v1/accounts/{id}/members",
		Summary: "Invite a member to an account", Description: "Returns a single-use invite_url, valid for 7 days, that lets the person set a password and join. Operators and the account's owners.",
		Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *inviteMemberInput) (*inviteOutput, error) {
			inv, err := s.svc.InviteMember(ctx, in.ID, in.Body.Email, keyplane.MemberRole(in.Body.Role))
			if err != nil {
				return nil, err
			}
			base := s.portalURL
			if base == "" {
				base = in.origin
			}
			out := &inviteOutput{Body: inviteBody(inv.Invite)}
			out.Body.InviteURL = service.InviteURL(base, inv.Token)
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listMembers", Method: http.MethodGet, Path: "/v1/accounts/{id}/members",
		Summary: "List an account's members", Description: "Operators and the account's owners.", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *listMembersInput) (*listMembersOutput, error) {
			members, next, err := s.svc.ListMembers(ctx, in.ID, in.page())
			if err != nil {
				return nil, err
			}
			out := &listMembersOutput{Body: List[MemberBody]{Data: make([]MemberBody, len(members)), NextCursor: next}}
			for i, m := range members {
				out.Body.Data[i] = memberBody(m)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "updateMember", Method: http.MethodPatch, Path: "/v1/members/{id}",
		Summary: "Change a member's role or status", Description: "Operators and owners of the member's account. An account always keeps an active owner (409).",
		Tags: tags, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *updateMemberInput) (*memberOutput, error) {
			var up service.MemberUpdate
			if in.Body.Role.Set {
				r := keyplane.MemberRole(in.Body.Role.Value)
				up.Role = &r
			}
			if in.Body.Status.Set {
				st := keyplane.MemberStatus(in.Body.Status.Value)
				up.Status = &st
			}
			m, err := s.svc.UpdateMember(ctx, in.ID, up)
			if err != nil {
				return nil, err
			}
			return &memberOutput{Body: memberBody(m)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "deleteMember", Method: http.MethodDelete, Path: "/v1/members/{id}",
		Summary: "Delete a member", Description: "Their sessions end at once and their reset links stop working. Operators and owners of the member's account; the account's last owner cannot be deleted (409).",
		Tags: tags, DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *MemberPath) (*struct{}, error) {
			return nil, s.svc.DeleteMember(ctx, in.ID)
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "changeMemberPassword", Method: http.MethodPost, Path: "/v1/members/{id}/password",
		Summary: "Change your own password", Description: "With a portal session of the member, and the current password. Every other session of the member ends; this one stays. Wrong current passwords are throttled (429).",
		Tags: tags, DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound, http.StatusForbidden, http.StatusTooManyRequests}},
		func(ctx context.Context, in *changePasswordInput) (*struct{}, error) {
			_, err := s.svc.ChangePassword(ctx, in.ID, in.Body.CurrentPassword, in.Body.NewPassword)
			return nil, err
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "issuePasswordReset", Method: http.MethodPost, Path: "/v1/members/{id}/password-reset",
		Summary: "Make a password reset link", Description: "Returns a single-use reset_url, valid for one hour. Operators and owners of the member's account.",
		Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *issueResetInput) (*resetOutput, error) {
			r, err := s.svc.IssuePasswordReset(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			base := s.portalURL
			if base == "" {
				base = in.origin
			}
			out := &resetOutput{}
			out.Body.ID, out.Body.MemberID, out.Body.Email, out.Body.ExpiresAt = r.ID, r.MemberID, r.Email, r.ExpiresAt
			out.Body.ResetURL = service.ResetURL(base, r.Token)
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listInvites", Method: http.MethodGet, Path: "/v1/accounts/{id}/invites",
		Summary: "List an account's pending invites", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *AccountPath) (*listInvitesOutput, error) {
			invites, err := s.svc.PendingInvites(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			out := &listInvitesOutput{}
			out.Body.Data = make([]InviteBody, len(invites))
			for i, inv := range invites {
				out.Body.Data[i] = inviteBody(inv)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "cancelInvite", Method: http.MethodDelete, Path: "/v1/invites/{id}",
		Summary: "Cancel an invite", Description: "Its link stops working.", Tags: tags, DefaultStatus: http.StatusNoContent, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *InvitePath) (*struct{}, error) {
			return nil, s.svc.CancelInvite(ctx, in.ID)
		})
}
