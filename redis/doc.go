// Package redis implements keyplane's cluster mode on Redis: a change bus on
// pub/sub, so every instance forgets a revoked key within milliseconds.
//
// It may import the domain; it is the only package that knows Redis.
package redis
