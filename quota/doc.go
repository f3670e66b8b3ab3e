// Package quota counts quota usage in memory and persists it in batches.
//
// Each instance keeps, per subject (a key, or an account for shared quotas)
// and period, the total it last read from the store plus what it charged
// since. Every flush adds its own charges to the store and reads back the
// total, which brings in what the other instances charged: across instances
// a quota can be overshot by at most what they admit in one flush interval.
// Verification never waits on the store except for the first charge of a
// subject's period on this instance, which loads its count.
//
// It may import the domain and periodic.
package quota
