// Package coarseclock is a clock that reads a variable instead of the system
// clock. On the virtual machines keyplane runs on, time.Now can cost ~100 ns,
// a fifth of the verify budget; verification needs the time only to compare
// it with expiries, for which a millisecond is precise enough.
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

// Stop ends the ticker.
func (c *Clock) Stop() { c.stopOnce.Do(func() { close(c.stop) }) }
