package apikey

import (
	"crypto/sha256"
	"hash/crc32"
	"strings"
	"testing"
)

// GitHub's published example of its token checksum layout.
func TestChecksumGitHubExample(t *testing.T) {
	if got := Checksum("zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ"); got != "0mLq17" {
		t.Fatalf("Checksum = %q, want 0mLq17", got)
	}
}

func TestNewParses(t *testing.T) {
	for _, tc := range []struct{ prefix, env string }{{"kp", "live"}, {"kp", "test"}, {"acme2", "live"}} {
		k := New(tc.prefix, tc.env)
		if want := len(tc.prefix) + 1 + 4 + 1 + 36; len(k) != want {
			t.Fatalf("len(%q) = %d, want %d", k, len(k), want)
		}
		env, ok := Parse(k, tc.prefix)
		if !ok || env != tc.env {
			t.Fatalf("Parse(%q) = %q, %v", k, env, ok)
		}
		if !ScanPattern.MatchString("leaked: " + k + " here") {
			t.Fatalf("ScanPattern misses %q", k)
		}
	}
}

func TestNewIsRandomAndUniform(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 2000 {
		k := New("kp", "live")
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
		for i := 8; i < 8+RandomLen; i++ {
			counts[k[i]]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct characters, want all 62", len(counts))
	}
	// 60000 draws over 62 characters: ~968 each. A biased generator (plain
	// byte % 62) would give the first 8 characters ~25% more.
	for c, n := range counts {
		if n < 800 || n > 1140 {
			t.Errorf("character %q drawn %d times, expected about 968", c, n)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"
	if _, ok := Parse(good, "kp"); !ok {
		t.Fatalf("Parse rejects the good key %q", good)
	}
	for name, s := range map[string]string{
		"empty":         "",
		"bad checksum":  "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq18",
		"swapped chars": "kp_live_QzWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"other prefix":  "xx_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"bad env":       "kp_prod_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"short":         "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq1",
		"long":          good + "7",
		"non-base62":    "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxk-0mLq17",
		"upper env":     "kp_LIVE_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"missing sep":   "kplive_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17x",
		"unicode":       "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq1é",
		"token not key": "kpt_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
	} {
		if env, ok := Parse(s, "kp"); ok {
			t.Errorf("%s: Parse(%q) accepted with env %q", name, s, env)
		}
	}
}

func TestToken(t *testing.T) {
	tok := NewToken()
	if !strings.HasPrefix(tok, "kpt_") || !ParseToken(tok) {
		t.Fatalf("token %q does not parse", tok)
	}
	if ParseToken(tok[:len(tok)-1]+"x") && !strings.HasSuffix(tok, "x") {
		t.Fatal("token with altered checksum parses")
	}
	if _, ok := Parse(tok, "kpt"); ok {
		t.Fatal("a token parses as a key")
	}
}

func TestHint(t *testing.T) {
	k := "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"
	if got, want := Hint(k), "kp_live_zQWB…Lq17"; got != want {
		t.Fatalf("Hint = %q, want %q", got, want)
	}
}

func TestValidPrefix(t *testing.T) {
	for p, want := range map[string]bool{"kp": true, "acme": true, "a1": true, "k": false, "1kp": false, "Kp": false, "kp_x": false, "abcdefghijk": false, "abcdefghij": true} {
		if ValidPrefix(p) != want {
			t.Errorf("ValidPrefix(%q) = %v", p, !want)
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	k := New("kp", "live")
	if n := testing.AllocsPerRun(100, func() { Parse(k, "kp") }); n != 0 {
		t.Fatalf("Parse allocates %v times", n)
	}
}

// FuzzParse checks that Parse never panics and accepts only strings that are
// well-formed, whose checksum is right, and that round-trip through the scanner.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"kp_test_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17",
		"kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq18",
		"kp_live_", "", "kp", "kp_", "kp_live_\x00\xff", New("kp", "live"), New("kp", "test"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env, ok := Parse(s, "kp")
		if !ok {
			return
		}
		if env != "live" && env != "test" {
			t.Fatalf("env %q", env)
		}
		secret := s[len("kp_live_"):]
		if Checksum(secret[:RandomLen]) != secret[RandomLen:] {
			t.Fatalf("accepted %q with a wrong checksum", s)
		}
		if !ScanPattern.MatchString(s) {
			t.Fatalf("accepted %q, which the scanner would miss", s)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	k := New("kp", "live")
	for b.Loop() {
		Parse(k, "kp")
	}
}

func TestCRC32MatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "a", "1234567", "12345678", "123456789", "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ", New("kp", "live"), strings.Repeat("\xff\x00", 40)} {
		if crc32IEEE(s) != crc32.ChecksumIEEE([]byte(s)) {
			t.Errorf("crc32IEEE(%q) differs from hash/crc32", s)
		}
	}
}

func TestHashDoesNotAllocate(t *testing.T) {
	k := New("kp", "live")
	if n := testing.AllocsPerRun(100, func() { Hash(k) }); n != 0 {
		t.Fatalf("Hash allocates %v times", n)
	}
	long := strings.Repeat("x", 500)
	if Hash(long) != sha256.Sum256([]byte(long)) || Hash(k) != sha256.Sum256([]byte(k)) {
		t.Fatal("Hash differs from sha256.Sum256")
	}
}

// BenchmarkHash is the floor of verification: SHA-256 of a key. DESIGN.md
// measured ~94 ns on this kind of machine; comparing it with the figures of a
// run tells how fast the machine was that day.
func BenchmarkHash(b *testing.B) {
	k := New("kp", "live")
	for b.Loop() {
		Hash(k)
	}
}

func TestContainsSecret(t *testing.T) {
	key, tok := New("acme2", "test"), NewToken()
	for _, s := range []string{key, tok, "  " + key + "\n", "my key is" + key + "@example.com", "x" + tok + "y", "kp_live_" + key[len("acme2_test_"):]} {
		if !ContainsSecret(s) {
			t.Errorf("ContainsSecret(%q) = false", s)
		}
	}
	secret := key[len(key)-SecretLen:]
	bad := secret[:SecretLen-1] + string(Alphabet[(strings.IndexByte(Alphabet, secret[SecretLen-1])+1)%62])
	for _, s := range []string{"", "ada@example.com", "a long enough password", secret, "kp_live_" + bad, key[:len(key)-1], strings.Repeat("_", 100)} {
		if ContainsSecret(s) {
			t.Errorf("ContainsSecret(%q) = true", s)
		}
	}
}

func TestValidSecretBytes(t *testing.T) {
	if !ValidSecretBytes([]byte("zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17")) {
		t.Fatal("GitHub's example")
	}
	for range 1000 {
		k := New("kp", "live")
		if !ValidSecretBytes([]byte(k[8:])) {
			t.Fatalf("%s", k)
		}
		bad := []byte(k[8:])
		bad[3] ^= 1
		if _, ok := Parse(k[:11]+string(bad[3])+k[12:], "kp"); ValidSecretBytes(bad) != ok {
			t.Fatalf("ValidSecretBytes and Parse disagree on %s", bad)
		}
	}
	for _, s := range []string{"", "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq1", "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq1!", "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq18"} {
		if ValidSecretBytes([]byte(s)) {
			t.Fatalf("%q accepted", s)
		}
	}
}
