package usersfile

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/md4" //lint:ignore SA1019 PLAIN-MD4 is MD4 by definition; verified only for old files, reported weak
)

// The Dovecot password schemes (doc.dovecot.org, "Password Schemes";
// src/auth/password-scheme.c), as `doveadm pw -l` lists them on Dovecot
// 2.3, and what Postern does with each.
//
// A stored hash is "{SCHEME}payload" or "{SCHEME.ENC}payload", ENC being
// b64/base64 or hex (case-insensitive). Without ENC, the payload is decoded
// with the scheme's default encoding; for a fixed-length digest whose
// default is not "none", Dovecot guesses hex when the payload is twice the
// digest length and base64 otherwise, and so does Postern.
//
// Not verified: OTP (one-time passwords; verifying one changes it, which a
// read-only users file cannot store). Those entries are skipped at load.
type pwEncoding int

const (
	encNone pwEncoding = iota
	encBase64
	encHex
)

// pbkdf2MaxRounds bounds PBKDF2 and SCRAM iteration counts, like
// shaCryptMaxRounds: every login attempt pays the stored cost. Below
// shaCryptMinRounds such a hash is reported weak.
const pbkdf2MaxRounds = 10_000_000

// schemeSpec says how to decode and verify one Dovecot scheme.
type schemeSpec struct {
	enc    pwEncoding // default encoding of the payload
	rawLen int        // decoded length of a fixed-length digest, 0 otherwise
	// parse checks the decoded payload. name is the scheme as written
	// (upper case, without encoding); login only matters to DIGEST-MD5.
	parse func(name string, raw []byte, login string) (parsedHash, error)
}

// dovecotSchemes maps every scheme Postern verifies to its spec.
var dovecotSchemes = map[string]schemeSpec{
	"BLF-CRYPT":     {enc: encNone, parse: cryptScheme},
	"SHA512-CRYPT":  {enc: encNone, parse: cryptScheme},
	"SHA256-CRYPT":  {enc: encNone, parse: cryptScheme},
	"MD5-CRYPT":     {enc: encNone, parse: cryptScheme},
	"DES-CRYPT":     {enc: encNone, parse: cryptScheme},
	"CRYPT":         {enc: encNone, parse: cryptScheme},
	"ARGON2ID":      {enc: encNone, parse: cryptScheme},
	"ARGON2I":       {enc: encNone, parse: cryptScheme},
	"MD5":           {enc: encNone, parse: parseMD5Scheme},
	"PBKDF2":        {enc: encNone, parse: parsePBKDF2},
	"SCRAM-SHA-1":   {enc: encNone, parse: parseSCRAM},
	"SCRAM-SHA-256": {enc: encNone, parse: parseSCRAM},
	"PLAIN":         {enc: encNone, parse: parsePlain},
	"CLEAR":         {enc: encNone, parse: parsePlain},
	"CLEARTEXT":     {enc: encNone, parse: parsePlain},
	"PLAIN-TRUNC":   {enc: encNone, parse: parsePlainTrunc},
	"SHA":           {enc: encBase64, rawLen: sha1.Size, parse: digestScheme(sha1.New)},
	"SHA1":          {enc: encBase64, rawLen: sha1.Size, parse: digestScheme(sha1.New)},
	"SHA256":        {enc: encBase64, rawLen: sha256.Size, parse: digestScheme(sha256.New)},
	"SHA512":        {enc: encBase64, rawLen: sha512.Size, parse: digestScheme(sha512.New)},
	"PLAIN-MD5":     {enc: encHex, rawLen: md5.Size, parse: digestScheme(md5.New)},
	"LDAP-MD5":      {enc: encBase64, rawLen: md5.Size, parse: digestScheme(md5.New)},
	"PLAIN-MD4":     {enc: encHex, rawLen: md4.Size, parse: digestScheme(md4.New)},
	"SMD5":          {enc: encBase64, parse: saltedScheme(md5.New)},
	"SSHA":          {enc: encBase64, parse: saltedScheme(sha1.New)},
	"SSHA256":       {enc: encBase64, parse: saltedScheme(sha256.New)},
	"SSHA512":       {enc: encBase64, parse: saltedScheme(sha512.New)},
	"CRAM-MD5":      {enc: encHex, rawLen: 2 * md5.Size, parse: parseCRAMMD5},
	"HMAC-MD5":      {enc: encHex, rawLen: 2 * md5.Size, parse: parseCRAMMD5},
	"DIGEST-MD5":    {enc: encHex, rawLen: md5.Size, parse: parseDigestMD5},
}

// skippedSchemes are Dovecot schemes Postern knows and deliberately does not
// verify, with the reason given in the load warning.
var skippedSchemes = map[string]string{
	"OTP":  "one-time passwords change at every login, which a read-only users file cannot record",
	"SKEY": "one-time passwords change at every login, which a read-only users file cannot record",
}

// parseDovecot decodes payload by scheme (upper case, possibly with an
// ".ENC" suffix) and prepares its verification.
func parseDovecot(scheme, payload, login string) (parsedHash, error) {
	name, suffix, hasSuffix := strings.Cut(scheme, ".")
	if reason, ok := skippedSchemes[name]; ok {
		return parsedHash{}, unknownScheme("password scheme {%s} is not verified: %s", name, reason)
	}
	spec, ok := dovecotSchemes[name]
	enc := spec.enc
	if hasSuffix {
		switch suffix {
		case "B64", "BASE64":
			enc = encBase64
		case "HEX":
			enc = encHex
		default:
			ok = false
		}
	}
	if !ok {
		return parsedHash{}, unknownScheme("password scheme {%s} is not supported", printableName(scheme))
	}
	raw, err := decodePayload(payload, enc, spec.rawLen, !hasSuffix)
	if err != nil {
		return parsedHash{}, fmt.Errorf("%w: {%s}: %w", ErrUnsupportedHash, scheme, err)
	}
	h, err := spec.parse(name, raw, login)
	if err != nil {
		if errors.Is(err, ErrUnsupportedHash) {
			return parsedHash{}, err
		}
		return parsedHash{}, fmt.Errorf("%w: {%s}: %w", ErrUnsupportedHash, name, err)
	}
	if h.scheme == "" {
		h.scheme = name
	}
	return h, nil
}

// decodePayload applies enc; guess allows Dovecot's hex-or-base64 guess for
// a fixed-length digest. A fixed length is checked after decoding.
func decodePayload(payload string, enc pwEncoding, rawLen int, guess bool) ([]byte, error) {
	if guess && enc != encNone && rawLen != 0 {
		enc = encBase64
		if len(payload) == 2*rawLen {
			if raw, err := hex.DecodeString(payload); err == nil {
				return raw, nil
			}
		}
	}
	var raw []byte
	switch enc {
	case encNone:
		raw = []byte(payload)
	case encHex:
		var err error
		if raw, err = hex.DecodeString(payload); err != nil {
			return nil, errors.New("payload is not hex")
		}
	case encBase64:
		var err error
		if raw, err = decodeBase64(payload); err != nil {
			return nil, errors.New("payload is not base64")
		}
	}
	if rawLen != 0 && len(raw) != rawLen {
		return nil, fmt.Errorf("decoded length %d, want %d", len(raw), rawLen)
	}
	return raw, nil
}

// decodeBase64 accepts standard base64 with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if raw, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
		return raw, nil
	}
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

// equalDigest compares two digests in constant time.
func equalDigest(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// cryptScheme handles the schemes whose payload is a crypt(3) string.
func cryptScheme(name string, raw []byte, _ string) (parsedHash, error) {
	return parseCrypt(name, string(raw))
}

// parseMD5Scheme: Dovecot's {MD5} is MD5-crypt when the payload starts with
// "$1$", and a PLAIN-MD5 digest (hex or base64) otherwise.
func parseMD5Scheme(_ string, raw []byte, login string) (parsedHash, error) {
	if strings.HasPrefix(string(raw), md5CryptMagic) {
		return parseCrypt("MD5-CRYPT", string(raw))
	}
	digest, err := decodePayload(string(raw), encHex, md5.Size, true)
	if err != nil {
		return parsedHash{}, errors.New("neither MD5-crypt nor a PLAIN-MD5 digest")
	}
	h, err := digestScheme(md5.New)("PLAIN-MD5", digest, login)
	h.scheme = "PLAIN-MD5"
	return h, err
}

// parsePlain: the password itself. Both sides are hashed before the
// constant-time comparison, so that the time taken says nothing about the
// stored password's length either.
func parsePlain(name string, raw []byte, _ string) (parsedHash, error) {
	stored := sha256.Sum256(raw)
	check := func(password string) (bool, error) {
		given := sha256.Sum256([]byte(password))
		return equalDigest(given[:], stored[:]), nil
	}
	return parsedHash{weak: true, costClass: name, check: check}, nil
}

// parsePlainTrunc: "N-password", a clear password that a system limited to
// N characters stored; a longer password matches if its first N characters
// do (Dovecot's plain_trunc_verify).
func parsePlainTrunc(name string, raw []byte, _ string) (parsedHash, error) {
	lenText, stored, found := strings.Cut(string(raw), "-")
	n, err := strconv.Atoi(lenText)
	if !found || err != nil || n < 0 || lenText[0] < '0' || lenText[0] > '9' {
		return parsedHash{}, errors.New("missing the N- length prefix")
	}
	storedSum := sha256.Sum256([]byte(stored))
	check := func(password string) (bool, error) {
		if len(stored) == n && len(password) >= n {
			password = password[:n]
		}
		given := sha256.Sum256([]byte(password))
		return equalDigest(given[:], storedSum[:]), nil
	}
	return parsedHash{weak: true, costClass: name, check: check}, nil
}

// digestScheme: an unsalted digest of the password (SHA, SHA256, PLAIN-MD5…).
func digestScheme(newHash func() hash.Hash) func(string, []byte, string) (parsedHash, error) {
	return func(name string, raw []byte, _ string) (parsedHash, error) {
		check := func(password string) (bool, error) {
			h := newHash()
			h.Write([]byte(password))
			return equalDigest(h.Sum(nil), raw), nil
		}
		return parsedHash{weak: true, costClass: name, check: check}, nil
	}
}

// saltedScheme: digest(password + salt) followed by the salt (SSHA, SMD5…).
// The salt must not be empty (Dovecot: "password too short").
func saltedScheme(newHash func() hash.Hash) func(string, []byte, string) (parsedHash, error) {
	return func(name string, raw []byte, _ string) (parsedHash, error) {
		size := newHash().Size()
		if len(raw) <= size || len(raw) > size+argon2MaxBytes {
			return parsedHash{}, fmt.Errorf("decoded length %d, want %d digest bytes and a salt of 1..%d", len(raw), size, argon2MaxBytes)
		}
		digest, salt := raw[:size], raw[size:]
		check := func(password string) (bool, error) {
			h := newHash()
			h.Write([]byte(password))
			h.Write(salt)
			return equalDigest(h.Sum(nil), digest), nil
		}
		return parsedHash{weak: true, costClass: name, check: check}, nil
	}
}

// parseCRAMMD5: the HMAC-MD5 context Dovecot stores so CRAM-MD5 can work
// without the clear password: the MD5 states after the outer and the inner
// padded key blocks, four little-endian words each.
func parseCRAMMD5(name string, raw []byte, _ string) (parsedHash, error) {
	check := func(password string) (bool, error) {
		ctx, err := cramMD5Context(password)
		if err != nil {
			return false, err
		}
		return equalDigest(ctx, raw), nil
	}
	return parsedHash{weak: true, costClass: name, check: check}, nil
}

// cramMD5Context computes the 32-byte context of RFC 2104 HMAC-MD5 keyed
// with password, as Dovecot's hmac_md5_get_cram_context writes it.
func cramMD5Context(password string) ([]byte, error) {
	key := []byte(password)
	if len(key) > md5BlockSize {
		sum := md5.Sum(key)
		key = sum[:]
	}
	var ipad, opad [md5BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	out := make([]byte, 0, 2*md5.Size)
	for _, block := range [][]byte{opad[:], ipad[:]} {
		h := md5.New()
		h.Write(block)
		// crypto/md5 marshals as "md5\x01" followed by the four state
		// words, big-endian: the state after the block.
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil || len(state) < 4+md5.Size || string(state[:4]) != "md5\x01" {
			return nil, errors.New("computing CRAM-MD5 context: unexpected MD5 state encoding")
		}
		for i := 0; i < 4; i++ {
			out = binary.LittleEndian.AppendUint32(out, binary.BigEndian.Uint32(state[4+4*i:]))
		}
	}
	return out, nil
}

const md5BlockSize = 64

// parseDigestMD5: MD5("user:realm:password"), where login is "user@realm"
// (split at the last "@"; no "@" means an empty realm), as doveadm pw -u
// writes it. Only a users file knows the login.
func parseDigestMD5(name string, raw []byte, login string) (parsedHash, error) {
	if login == "" {
		return parsedHash{}, errors.New("needs the login, which only a users file gives")
	}
	user, realm := login, ""
	if at := strings.LastIndexByte(login, '@'); at >= 0 {
		user, realm = login[:at], login[at+1:]
	}
	check := func(password string) (bool, error) {
		sum := md5.Sum([]byte(user + ":" + realm + ":" + password))
		return equalDigest(sum[:], raw), nil
	}
	return parsedHash{weak: true, costClass: name, check: check}, nil
}

// parseRounds reads an iteration count within 1..pbkdf2MaxRounds.
func parseRounds(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errors.New("rounds is not a number")
	}
	if n < 1 || n > pbkdf2MaxRounds {
		return 0, fmt.Errorf("rounds %d outside 1..%d", n, pbkdf2MaxRounds)
	}
	return n, nil
}

// parsePBKDF2: Dovecot's "$1$salt$rounds$hex", PBKDF2-HMAC-SHA1 with the
// salt text as the salt and a 20-byte key.
func parsePBKDF2(name string, raw []byte, _ string) (parsedHash, error) {
	parts := strings.Split(string(raw), "$") // "", "1", salt, rounds, key
	if len(parts) != 5 || parts[0] != "" || parts[1] != "1" {
		return parsedHash{}, errors.New("expected $1$salt$rounds$hex")
	}
	salt := []byte(parts[2])
	if len(salt) > argon2MaxBytes {
		return parsedHash{}, fmt.Errorf("salt longer than %d bytes", argon2MaxBytes)
	}
	rounds, err := parseRounds(parts[3])
	if err != nil {
		return parsedHash{}, err
	}
	key, err := hex.DecodeString(parts[4])
	if err != nil || len(key) != sha1.Size {
		return parsedHash{}, fmt.Errorf("key is not %d hex digits", 2*sha1.Size)
	}
	check := func(password string) (bool, error) {
		derived, err := pbkdf2.Key(sha1.New, password, salt, rounds, sha1.Size)
		if err != nil {
			return false, fmt.Errorf("verifying PBKDF2 password: %w", err)
		}
		return equalDigest(derived, key), nil
	}
	return parsedHash{weak: rounds < shaCryptMinRounds, costClass: fmt.Sprintf("%s rounds=%d", name, rounds), check: check}, nil
}

// parseSCRAM: "rounds,salt,StoredKey,ServerKey" (RFC 5802 §3, base64
// fields). The password verifies when H(HMAC(SaltedPassword, "Client
// Key")) is the StoredKey.
func parseSCRAM(name string, raw []byte, _ string) (parsedHash, error) {
	newHash := sha1.New
	if name == "SCRAM-SHA-256" {
		newHash = sha256.New
	}
	size := newHash().Size()
	parts := strings.Split(string(raw), ",")
	if len(parts) != 4 {
		return parsedHash{}, errors.New("expected rounds,salt,StoredKey,ServerKey")
	}
	rounds, err := parseRounds(parts[0])
	if err != nil {
		return parsedHash{}, err
	}
	salt, err := base64.StdEncoding.Strict().DecodeString(parts[1])
	if err != nil || len(salt) == 0 || len(salt) > argon2MaxBytes {
		return parsedHash{}, errors.New("salt is not base64 of 1..1024 bytes")
	}
	stored, err1 := base64.StdEncoding.Strict().DecodeString(parts[2])
	server, err2 := base64.StdEncoding.Strict().DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(stored) != size || len(server) != size {
		return parsedHash{}, fmt.Errorf("keys are not base64 of %d bytes", size)
	}
	check := func(password string) (bool, error) {
		salted, err := pbkdf2.Key(newHash, password, salt, rounds, size)
		if err != nil {
			return false, fmt.Errorf("verifying %s password: %w", name, err)
		}
		mac := hmac.New(newHash, salted)
		mac.Write([]byte("Client Key"))
		h := newHash()
		h.Write(mac.Sum(nil))
		return equalDigest(h.Sum(nil), stored), nil
	}
	return parsedHash{weak: rounds < shaCryptMinRounds, costClass: fmt.Sprintf("%s rounds=%d", name, rounds), check: check}, nil
}
