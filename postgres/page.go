package postgres

import "github.com/keyplane/keyplane"

// cut trims the one extra row fetched to learn whether another page exists.
func cut[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, keyplane.EncodeCursor(id(items[limit-1]))
}
