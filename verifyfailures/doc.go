// Package verifyfailures writes failed verifications to the audit log without
// letting an attacker flood it: failures are counted in memory per key (or
// key-hash prefix, for keys that do not exist), client IP, code and minute,
// and each group becomes one "verify.failed" event with its count once its
// minute is over. The number of groups a minute is capped; the rest fold
// into one "other" group per code, so any flood writes a bounded number of
// rows.
//
// It may import the domain and periodic.
package verifyfailures
