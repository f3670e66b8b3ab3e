package coarseclock

import (
	"testing"
	"time"
)

func TestAdvances(t *testing.T) {
	c := New(time.Millisecond)
	defer c.Stop()
	first := c.Now()
	if d := time.Since(first); d < 0 || d > time.Second {
		t.Fatalf("clock is %v off", d)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !c.Now().After(first) {
		if time.Now().After(deadline) {
			t.Fatal("clock did not advance")
		}
		time.Sleep(time.Millisecond)
	}
	if c.Now().Location() != time.UTC {
		t.Fatal("not UTC")
	}
	c.Stop()
	c.Stop() // twice is fine
}

func BenchmarkNow(b *testing.B) {
	c := New(time.Millisecond)
	defer c.Stop()
	for b.Loop() {
		c.Now()
	}
}
