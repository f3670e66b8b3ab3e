// Package teststore gives tests the store the run asks for, so the service
// and HTTP suites prove the whole product on both databases: SQLite by
// default, PostgreSQL when KEYPLANE_TEST_STORE=postgres.
//
// A test helper: it may import the domain and the two stores.
package teststore
