package usersfile

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/md5crypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
)

// hashKind is one of the crypt(3)-style algorithms Postern verifies.
type hashKind int

const (
	kindBcrypt hashKind = iota + 1
	kindSHA256Crypt
	kindSHA512Crypt
	kindArgon2id
	kindArgon2i
	kindMD5Crypt
	kindAPR1
	kindDESCrypt
)

func (k hashKind) String() string {
	switch k {
	case kindBcrypt:
		return "bcrypt"
	case kindSHA256Crypt:
		return "SHA256-crypt"
	case kindSHA512Crypt:
		return "SHA512-crypt"
	case kindArgon2id:
		return "argon2id"
	case kindArgon2i:
		return "argon2i"
	case kindMD5Crypt:
		return "MD5-crypt"
	case kindAPR1:
		return "APR1-MD5"
	case kindDESCrypt:
		return "DES-crypt"
	}
	return "unknown"
}

// scheme is the kind's Dovecot scheme name, the label in logs and metrics.
// Apache's $apr1$ has none; it is named as htpasswd documents it.
func (k hashKind) scheme() string {
	switch k {
	case kindBcrypt:
		return "BLF-CRYPT"
	case kindSHA256Crypt:
		return "SHA256-CRYPT"
	case kindSHA512Crypt:
		return "SHA512-CRYPT"
	case kindArgon2id:
		return "ARGON2ID"
	case kindArgon2i:
		return "ARGON2I"
	case kindMD5Crypt:
		return "MD5-CRYPT"
	case kindAPR1:
		return "APR1-MD5"
	case kindDESCrypt:
		return "DES-CRYPT"
	}
	return "unknown"
}

// Bounds on the cost parameters a stored hash may ask for. The crypt formats
// allow absurd values (bcrypt cost 31 runs for hours, argon2id m=2^32 KiB
// asks for 4 TiB), and every login attempt pays the stored cost, so a typo in
// the users file must be a load error rather than a self-inflicted DoS.
const (
	bcryptMinCost      = 4
	bcryptMaxCost      = 20 // about 1 min on a current CPU; real files use 5..14
	shaCryptMinRounds  = 1000
	shaCryptMaxRounds  = 10_000_000 // about 4-10 s; glibc allows 999999999
	argon2MaxMemoryKiB = 4 << 20    // 4 GiB
	argon2MaxTime      = 1000
	argon2MaxThreads   = 255
	argon2MaxBytes     = 1024 // decoded salt and tag length
	shaCryptMaxSalt    = 16   // glibc truncates longer salts when hashing
	sha256CryptKeyLen  = 43
	sha512CryptKeyLen  = 86
	bcryptSaltKeyLen   = 53 // 22 salt characters + 31 hash characters
	desCryptLen        = 13 // 2 salt characters + 11 hash characters
)

// cryptSchemes lists the crypt kinds each Dovecot scheme may carry. {CRYPT}
// is libc crypt(3): DES, MD5, SHA-crypt and bcrypt, but not argon2. A hash
// with no prefix (Dovecot's default for passwd-files, and every htpasswd
// line) may be any kind.
var cryptSchemes = map[string][]hashKind{
	"BLF-CRYPT":    {kindBcrypt},
	"SHA512-CRYPT": {kindSHA512Crypt},
	"SHA256-CRYPT": {kindSHA256Crypt},
	"MD5-CRYPT":    {kindMD5Crypt},
	"DES-CRYPT":    {kindDESCrypt},
	"ARGON2ID":     {kindArgon2id},
	"ARGON2I":      {kindArgon2i},
	"CRYPT":        {kindBcrypt, kindSHA256Crypt, kindSHA512Crypt, kindMD5Crypt, kindAPR1, kindDESCrypt},
}

// parseCrypt checks a crypt(3) string, encoded, stored under scheme ("" for
// no prefix), and decodes it. Errors wrap ErrUnsupportedHash.
func parseCrypt(scheme, encoded string) (parsedHash, error) {
	kind, err := identifyCrypt(encoded)
	if err != nil {
		return parsedHash{}, err
	}
	if scheme != "" && !schemeAllows(scheme, kind) {
		return parsedHash{}, fmt.Errorf("%w: scheme {%s} does not hold a %s hash", ErrUnsupportedHash, scheme, kind)
	}
	var h parsedHash
	switch kind {
	case kindBcrypt:
		h, err = parseBcrypt(encoded)
	case kindSHA256Crypt, kindSHA512Crypt:
		h, err = parseSHACrypt(kind, encoded)
	case kindArgon2id, kindArgon2i:
		h, err = parseArgon2(kind, encoded)
	case kindMD5Crypt, kindAPR1:
		h, err = parseMD5Crypt(kind, encoded)
	case kindDESCrypt:
		h, err = parseDESCrypt(encoded)
	}
	if err != nil {
		return parsedHash{}, fmt.Errorf("%w: %s: %w", ErrUnsupportedHash, kind, err)
	}
	h.scheme = kind.scheme()
	return h, nil
}

func schemeAllows(scheme string, kind hashKind) bool {
	if scheme == "" {
		return true
	}
	for _, k := range cryptSchemes[scheme] {
		if k == kind {
			return true
		}
	}
	return false
}

// identifyCrypt reads the "$id$" that starts a modular crypt string; 13
// crypt-base64 characters without one are traditional DES crypt.
func identifyCrypt(encoded string) (hashKind, error) {
	if !strings.HasPrefix(encoded, "$") {
		if len(encoded) == desCryptLen && isCryptBase64(encoded) {
			return kindDESCrypt, nil
		}
		// Not a scheme some other tool wrote on purpose but most likely a
		// clear password or a damaged line: a load error, not a skip.
		return 0, fmt.Errorf("%w: not a crypt string (expected $2y$, $5$, $6$, $1$, $apr1$, $argon2id$ or 13-character DES)", ErrUnsupportedHash)
	}
	id, _, found := strings.Cut(encoded[1:], "$")
	if !found {
		return 0, fmt.Errorf("%w: crypt string has no identifier", ErrUnsupportedHash)
	}
	switch id {
	case "2a", "2b", "2y":
		return kindBcrypt, nil
	case "5":
		return kindSHA256Crypt, nil
	case "6":
		return kindSHA512Crypt, nil
	case "argon2id":
		return kindArgon2id, nil
	case "argon2i":
		return kindArgon2i, nil
	case "1":
		return kindMD5Crypt, nil
	case "apr1":
		return kindAPR1, nil
	}
	return 0, unknownScheme("hash type $%s$ is not supported", printableName(id))
}

// goCrypt wraps a go-crypt digest, whose comparison of the derived key is
// constant-time (crypto/subtle).
func goCrypt(kind hashKind, digest algorithm.Digest) func(string) (bool, error) {
	return func(password string) (bool, error) {
		ok, err := digest.MatchAdvanced(password)
		if err != nil {
			// go-crypt errors do not quote the hash; they only report key
			// derivation failures, which validation rules out.
			return false, fmt.Errorf("verifying %s password: %w", kind, err)
		}
		return ok, nil
	}
}

// parseMD5Crypt accepts "$1$salt$hash" and "$apr1$salt$hash", with a salt
// of at most 8 characters. go-crypt verifies "$1$"; "$apr1$" is ours
// (hash_md5crypt.go says why).
func parseMD5Crypt(kind hashKind, encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$") // "", id, salt, hash
	if len(parts) != 4 {
		return parsedHash{}, errors.New("expected $id$salt$hash")
	}
	salt, key := parts[2], parts[3]
	if len(salt) > md5CryptSalt || strings.ContainsAny(salt, ":\n") {
		return parsedHash{}, fmt.Errorf("salt is longer than %d characters", md5CryptSalt)
	}
	if len(key) != md5CryptKey || !isCryptBase64(key) {
		return parsedHash{}, fmt.Errorf("hash is not %d crypt-base64 characters", md5CryptKey)
	}
	h := parsedHash{weak: true, costClass: kind.String()}
	if kind == kindAPR1 {
		h.check = func(password string) (bool, error) {
			return subtle.ConstantTimeCompare([]byte(apr1Crypt(password, salt)), []byte(encoded)) == 1, nil
		}
		return h, nil
	}
	digest, err := md5crypt.DecodeVariant(md5crypt.VariantStandard)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("does not decode") // go-crypt's text would quote the hash
	}
	h.check = goCrypt(kind, digest)
	return h, nil
}

// parseDESCrypt accepts the 13-character traditional crypt string.
func parseDESCrypt(encoded string) (parsedHash, error) {
	if len(encoded) != desCryptLen || !isCryptBase64(encoded) {
		return parsedHash{}, fmt.Errorf("not %d crypt-base64 characters", desCryptLen)
	}
	check := func(password string) (bool, error) {
		return subtle.ConstantTimeCompare([]byte(desCrypt(password, encoded[:2])), []byte(encoded)) == 1, nil
	}
	return parsedHash{weak: true, costClass: kindDESCrypt.String(), check: check}, nil
}

// parseBcrypt accepts "$2y$NN$" followed by the 53-character salt and hash.
func parseBcrypt(encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$") // "", id, cost, salt+hash
	if len(parts) != 4 {
		return parsedHash{}, errors.New("expected $id$cost$salt-and-hash")
	}
	cost, err := strconv.Atoi(parts[2])
	if err != nil || len(parts[2]) != 2 {
		return parsedHash{}, errors.New("cost is not a two-digit number")
	}
	if cost < bcryptMinCost || cost > bcryptMaxCost {
		return parsedHash{}, fmt.Errorf("cost %d outside %d..%d", cost, bcryptMinCost, bcryptMaxCost)
	}
	if len(parts[3]) != bcryptSaltKeyLen || !isCryptBase64(parts[3]) {
		return parsedHash{}, fmt.Errorf("salt and hash are not %d crypt-base64 characters", bcryptSaltKeyLen)
	}
	digest, err := bcrypt.DecodeVariant(bcrypt.VariantStandard)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("salt does not decode") // go-crypt's text would quote the hash
	}
	return parsedHash{costClass: fmt.Sprintf("bcrypt cost=%d", cost), check: goCrypt(kindBcrypt, digest)}, nil
}

// parseSHACrypt accepts "$5$[rounds=N$]salt$hash" and the $6$ equivalent.
// Without rounds= the count is 5000 (the crypt specification's default).
func parseSHACrypt(kind hashKind, encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$")[2:] // drop "" and the id
	rounds := 5000
	if len(parts) == 3 {
		value, ok := strings.CutPrefix(parts[0], "rounds=")
		if !ok {
			return parsedHash{}, errors.New("expected rounds=N before the salt")
		}
		n, err := strconv.Atoi(value)
		if err != nil || value == "" || value[0] < '0' || value[0] > '9' {
			return parsedHash{}, errors.New("rounds is not a number")
		}
		if n < shaCryptMinRounds || n > shaCryptMaxRounds {
			return parsedHash{}, fmt.Errorf("rounds %d outside %d..%d", n, shaCryptMinRounds, shaCryptMaxRounds)
		}
		rounds = n
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return parsedHash{}, errors.New("expected $id$[rounds=N$]salt$hash")
	}
	salt, key := parts[0], parts[1]
	if salt == "" || len(salt) > shaCryptMaxSalt || strings.ContainsAny(salt, ":\n") {
		return parsedHash{}, fmt.Errorf("salt is not 1..%d characters", shaCryptMaxSalt)
	}
	keyLen := sha512CryptKeyLen
	variant := shacrypt.VariantSHA512
	if kind == kindSHA256Crypt {
		keyLen, variant = sha256CryptKeyLen, shacrypt.VariantSHA256
	}
	if len(key) != keyLen || !isCryptBase64(key) {
		return parsedHash{}, fmt.Errorf("hash is not %d crypt-base64 characters", keyLen)
	}
	digest, err := shacrypt.DecodeVariant(variant)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("does not decode")
	}
	return parsedHash{costClass: fmt.Sprintf("%s rounds=%d", kind, rounds), check: goCrypt(kind, digest)}, nil
}

// parseArgon2 accepts "$argon2id$v=19$m=M,t=T,p=P$salt$tag" and the
// $argon2i$ equivalent (the PHC strings that libsodium, and so Dovecot,
// writes).
func parseArgon2(kind hashKind, encoded string) (parsedHash, error) {
	parts := strings.Split(encoded, "$") // "", "argon2id", version, params, salt, tag
	if len(parts) != 6 {
		return parsedHash{}, fmt.Errorf("expected $%s$v=19$m=M,t=T,p=P$salt$tag", kind)
	}
	if parts[2] != "v=19" {
		return parsedHash{}, errors.New("version is not v=19")
	}
	m, t, p, err := parseArgon2Params(parts[3])
	if err != nil {
		return parsedHash{}, err
	}
	for _, field := range []struct{ name, value string }{{"salt", parts[4]}, {"tag", parts[5]}} {
		if field.value == "" || len(field.value) > argon2MaxBytes*4/3+1 {
			return parsedHash{}, fmt.Errorf("%s length outside 1..%d bytes", field.name, argon2MaxBytes)
		}
	}
	variant := argon2.VariantID
	if kind == kindArgon2i {
		variant = argon2.VariantI
	}
	digest, err := argon2.DecodeVariant(variant)(encoded)
	if err != nil {
		return parsedHash{}, errors.New("salt or tag is not unpadded base64")
	}
	return parsedHash{costClass: fmt.Sprintf("%s m=%d,t=%d,p=%d", kind, m, t, p), check: goCrypt(kind, digest)}, nil
}

// parseArgon2Params reads "m=M,t=T,p=P" in any order, each exactly once.
func parseArgon2Params(s string) (m, t, p uint64, err error) {
	seen := map[string]bool{}
	values := map[string]*uint64{"m": &m, "t": &t, "p": &p}
	for _, kv := range strings.Split(s, ",") {
		key, value, _ := strings.Cut(kv, "=")
		dst, known := values[key]
		if !known || seen[key] {
			return 0, 0, 0, errors.New("parameters are not m=M,t=T,p=P")
		}
		seen[key] = true
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("parameter %s is not a number", key)
		}
		*dst = n
	}
	switch {
	case len(seen) != 3:
		return 0, 0, 0, errors.New("parameters are not m=M,t=T,p=P")
	case p < 1 || p > argon2MaxThreads:
		return 0, 0, 0, fmt.Errorf("p=%d outside 1..%d", p, argon2MaxThreads)
	case t < 1 || t > argon2MaxTime:
		return 0, 0, 0, fmt.Errorf("t=%d outside 1..%d", t, argon2MaxTime)
	case m < 8*p || m > argon2MaxMemoryKiB:
		return 0, 0, 0, fmt.Errorf("m=%d outside 8*p..%d KiB", m, argon2MaxMemoryKiB)
	}
	return m, t, p, nil
}

// isCryptBase64 reports whether s uses only the crypt(3) alphabet [./0-9A-Za-z].
func isCryptBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// printableName returns s for an error message if it looks like a scheme or
// crypt identifier, and a placeholder otherwise: a mistyped line might put a
// password where a scheme name belongs, and errors must never show one.
func printableName(s string) string {
	if s == "" || len(s) > 20 {
		return "(unrecognised)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "(unrecognised)"
		}
	}
	return s
}
