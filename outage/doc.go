// Package outage turns an outage of the database (or of anything else whose
// errors say "unavailable") into two log lines instead of one per request:
// the first such error is logged as it comes, later ones are counted, and
// once they have stopped and the database answers again one line says the
// outage is over, how long it lasted and what was counted.
//
// It is a slog.Handler in front of the real one, so every component that
// logs an unavailable error (request handlers, the cache's refreshes, the
// background flushes) is covered without knowing about it.
//
// It may import the domain.
package outage
