// Package postgres implements keyplane.Store on PostgreSQL through pgx, for
// deployments that run more than one instance or already operate a database.
// It behaves as the sqlite package does; the storetest suite holds both to it.
//
// It may import the domain; it is the only package that knows PostgreSQL.
package postgres
