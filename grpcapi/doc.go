// Package grpcapi serves keyplane's gRPC API with connect-go: the services in
// proto/keyplane/v1 over gRPC, gRPC-Web and the Connect protocol, on the same
// port as the HTTP API, with server reflection so grpcurl can list and call them.
//
// A transport: it may import the domain, service, admit, problem and its generated
// code, never another transport.
package grpcapi
