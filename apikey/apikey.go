package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"regexp"
)

const (
	// Alphabet is base62 in the order GitHub uses: digits, upper, lower.
	// big.Int.Text(62) uses a different order and must not be used here.
	Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	RandomLen   = 30
	ChecksumLen = 6
	SecretLen   = RandomLen + ChecksumLen

	DefaultPrefix = "kp"
	// TokenPrefix marks operator tokens, which carry no environment.
	TokenPrefix = "kpt"
)

// ScanPattern finds candidate keys in text; a scanner must still check the
// checksum of each match with Parse.
var ScanPattern = regexp.MustCompile(`\b[a-z][a-z0-9]{1,9}_(live|test)_[0-9A-Za-z]{36}\b`)

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9]{1,9}$`)

// ValidPrefix reports whether p may be used as a deployment's key prefix.
func ValidPrefix(p string) bool { return prefixPattern.MatchString(p) }

// Checksum returns the 6-character base62 CRC-32 (IEEE) of random.
func Checksum(random string) string {
	var out [ChecksumLen]byte
	putChecksum(out[:], random)
	return string(out[:])
}

func putChecksum(dst []byte, random string) {
	n := crc32IEEE(random)
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = Alphabet[n%62]
		n /= 62
	}
}

// crc32IEEE is crc32.ChecksumIEEE over a string. hash/crc32 takes a []byte
// through an indirect call, so converting the key costs an allocation on every
// verification; this slicing-by-8 loop over the standard table does not, and
// is as fast for 30 bytes.
func crc32IEEE(s string) uint32 {
	crc := ^uint32(0)
	for len(s) >= 8 {
		crc ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		crc = slicing8[0][s[7]] ^ slicing8[1][s[6]] ^ slicing8[2][s[5]] ^ slicing8[3][s[4]] ^
			slicing8[4][crc>>24] ^ slicing8[5][crc>>16&0xff] ^ slicing8[6][crc>>8&0xff] ^ slicing8[7][crc&0xff]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

// slicing8[k][b] is the CRC of byte b followed by k zero bytes.
var slicing8 = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for b := range 256 {
		crc := t[0][b]
		for k := 1; k < 8; k++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[k][b] = crc
		}
	}
	return t
}()

// base62Char[c] is true for the characters of Alphabet.
var base62Char = func() (t [256]bool) {
	for i := range len(Alphabet) {
		t[Alphabet[i]] = true
	}
	return t
}()

// secret returns 30 random base62 characters followed by their checksum.
func secret() string {
	var b [SecretLen]byte
	fillRandom(b[:RandomLen])
	putChecksum(b[RandomLen:], string(b[:RandomLen]))
	return string(b[:])
}

// fillRandom fills dst with uniformly random base62 characters from
// crypto/rand, rejecting bytes >= 248 (4*62) so no character is more likely.
func fillRandom(dst []byte) {
	var buf [64]byte
	for i := 0; i < len(dst); {
		rand.Read(buf[:]) // never fails; it crashes the program instead
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			dst[i] = Alphabet[c%62]
			if i++; i == len(dst) {
				return
			}
		}
	}
}

// New returns a new key for the deployment prefix and environment ("live" or
// "test"). The caller has validated both.
func New(prefix, env string) string {
	return prefix + "_" + env + "_" + secret()
}

// NewToken returns a new operator token.
func NewToken() string { return TokenPrefix + "_" + secret() }

// Parse checks that s is a well-formed key for prefix with a correct checksum
// and returns its environment. It does not allocate.
func Parse(s, prefix string) (env string, ok bool) {
	// prefix _ env(4) _ secret
	if len(s) != len(prefix)+1+4+1+SecretLen || s[:len(prefix)] != prefix || s[len(prefix)] != '_' {
		return "", false
	}
	rest := s[len(prefix)+1:]
	switch rest[:5] {
	case "live_":
		env = "live"
	case "test_":
		env = "test"
	default:
		return "", false
	}
	if !validSecret(rest[5:]) {
		return "", false
	}
	return env, true
}

// ParseToken reports whether s is a well-formed operator token.
func ParseToken(s string) bool {
	return len(s) == len(TokenPrefix)+1+SecretLen && s[:len(TokenPrefix)+1] == TokenPrefix+"_" &&
		validSecret(s[len(TokenPrefix)+1:])
}

// ContainsSecret reports whether s holds anything that parses as a key of
// any prefix or as an operator token: an underscore followed by 36 base62
// characters whose last 6 are the checksum of the first 30. It is for text
// that must never keep one, such as what people type into a form field; a
// random run of characters passes by chance about once in 5.7e10.
func ContainsSecret(s string) bool {
	for i := 0; i+1+SecretLen <= len(s); i++ {
		if s[i] == '_' && validSecret(s[i+1:i+1+SecretLen]) {
			return true
		}
	}
	return false
}

func validSecret(s string) bool {
	for i := 0; i < len(s); i++ {
		if !base62Char[s[i]] {
			return false
		}
	}
	var sum [ChecksumLen]byte
	putChecksum(sum[:], s[:RandomLen])
	return string(sum[:]) == s[RandomLen:]
}

// Hash is what is stored and looked up instead of the key. SHA-256 and not a
// slow hash: the key has ~178 bits of entropy, and a slow hash would make every
// verification a denial-of-service lever.
func Hash(s string) [32]byte {
	// Converting a string of more than 32 bytes to []byte allocates; a copy
	// into a stack buffer does not. Keys and tokens are far shorter than it.
	var buf [128]byte
	if len(s) <= len(buf) {
		n := copy(buf[:], s)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(s))
}

// Hint shows enough of a key to recognise it: "kp_live_AbCd…wxyz". The caller
// passes a key that Parse accepted.
func Hint(s string) string {
	if len(s) < SecretLen {
		return ""
	}
	head := s[:len(s)-SecretLen+4]
	return head + "…" + s[len(s)-4:]
}

// ValidSecretBytes reports whether b is 36 base62 characters whose last 6
// are the checksum of the first 30: the test a scanner applies to each
// candidate. It does not allocate.
func ValidSecretBytes(b []byte) bool {
	if len(b) != SecretLen {
		return false
	}
	for _, c := range b {
		if !base62Char[c] {
			return false
		}
	}
	n := crc32.ChecksumIEEE(b[:RandomLen])
	for i := SecretLen - 1; i >= RandomLen; i-- {
		if b[i] != Alphabet[n%62] {
			return false
		}
		n /= 62
	}
	return true
}
