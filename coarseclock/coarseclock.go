package coarseclock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is updated by a ticker; its zero value is not usable, call New.
type Clock struct {
	nanos    atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
}

// New starts a clock that advances every resolution.
func New(resolution time.Duration) *Clock {
	c := &Clock{stop: make(chan struct{})}
	c.nanos.Store(time.Now().UnixNano())
	t := time.NewTicker(resolution)
	go func() {
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.nanos.Store(now.UnixNano())
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

// Now returns the time at most one resolution ago, in UTC.
func (c *Clock) Now() time.Time { return time.Unix(0, c.nanos.Load()).UTC() }

// NowNano is Now in Unix nanoseconds; with Tick it makes the clock usable
// by otter, whose own clock would read the system time on every lookup.
func (c *Clock) NowNano() int64 { return c.nanos.Load() }

// Tick returns a ticker's channel, for otter's periodic clean-up. The
// ticker lives as long as the process, as the cache does.
func (c *Clock) Tick(d time.Duration) <-chan time.Time { return time.NewTicker(d).C }

// Stop ends the ticker.
func (c *Clock) Stop() { c.stopOnce.Do(func() { close(c.stop) }) }
