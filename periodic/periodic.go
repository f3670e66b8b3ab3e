package periodic

import (
	"context"
	"log/slog"
	"time"
)

// Flush calls flush every interval until stop is closed, each call bounded
// by timeout. A failed flush is logged and its work left for the next one:
// the callers keep what they could not write.
func Flush(every, timeout time.Duration, stop <-chan struct{}, flush func(context.Context) error, log *slog.Logger, failed string) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			if err := flush(ctx); err != nil {
				log.Warn(failed, "err", err)
			}
			cancel()
		}
	}
}
