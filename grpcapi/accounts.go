package grpcapi

import (
	"context"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"github.com/keyplane/keyplane/service"
)

// accountService implements keyplane.v1.AccountService.
type accountService struct{ *Server }

func (s accountService) CreateAccount(ctx context.Context, req *connect.Request[pb.CreateAccountRequest]) (*connect.Response[pb.CreateAccountResponse], error) {
	m := req.Msg
	var v keyplane.Validation
	status := enumFromPB(&v, "status", m.Status, accountStatusFromPB)
	if err := v.Err(); err != nil {
		return nil, err
	}
	a, err := s.svc.CreateAccount(ctx, service.AccountInput{Name: m.Name, Plan: m.Plan, AllowedScopes: m.AllowedScopes, Status: status})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CreateAccountResponse{Account: accountToPB(a)}), nil
}

func (s accountService) GetAccount(ctx context.Context, req *connect.Request[pb.GetAccountRequest]) (*connect.Response[pb.GetAccountResponse], error) {
	a, err := s.svc.Account(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.GetAccountResponse{Account: accountToPB(a)}), nil
}

func (s accountService) ListAccounts(ctx context.Context, req *connect.Request[pb.ListAccountsRequest]) (*connect.Response[pb.ListAccountsResponse], error) {
	accounts, next, err := s.svc.ListAccounts(ctx, keyplane.Page{Limit: int(req.Msg.Limit), Cursor: req.Msg.Cursor})
	if err != nil {
		return nil, err
	}
	out := &pb.ListAccountsResponse{Accounts: make([]*pb.Account, len(accounts)), NextCursor: next}
	for i, a := range accounts {
		out.Accounts[i] = accountToPB(a)
	}
	return connect.NewResponse(out), nil
}

func (s accountService) UpdateAccount(ctx context.Context, req *connect.Request[pb.UpdateAccountRequest]) (*connect.Response[pb.UpdateAccountResponse], error) {
	m := req.Msg
	var v keyplane.Validation
	up := service.AccountUpdate{Name: m.Name, Plan: m.Plan}
	if m.AllowedScopes != nil {
		up.AllowedScopes = &m.AllowedScopes.Values
	}
	if st := enumFromPB(&v, "status", m.Status, accountStatusFromPB); st != "" {
		up.Status = &st
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	a, err := s.svc.UpdateAccount(ctx, m.Id, up)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.UpdateAccountResponse{Account: accountToPB(a)}), nil
}
