package certs

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ACMECacheKeySize is the length of --acme-cache-key-file's key: AES-256.
const ACMECacheKeySize = 32

// sealVersion is the first byte of every sealed ACME cache entry; a later
// format gets another, and an entry of an unknown one is refused.
const sealVersion = 1

// sealAADPrefix goes before the entry's name in the additional data, so a
// sealed value is bound to its name (and to this use of the key): one
// moved to another name, e.g. the account key put under a domain, fails to
// open.
const sealAADPrefix = "postern acme cache v1\x00"

// errEntryTampered is what opening an entry that fails authentication
// returns: changed in Redis, moved from another name, or sealed with
// another key.
var errEntryTampered = errors.New("certs: ACME cache entry fails authentication (changed, moved from another name, or another --acme-cache-key-file)")

// ParseACMECacheKey reads --acme-cache-key-file's content: exactly 32 bytes,
// or 64 hex digits (`openssl rand -hex 32`); surrounding whitespace (a
// trailing newline) is ignored for the hex form.
func ParseACMECacheKey(data []byte) ([]byte, error) {
	if len(data) == ACMECacheKeySize {
		return bytes.Clone(data), nil
	}
	text := bytes.TrimSpace(data)
	if len(text) != 2*ACMECacheKeySize {
		return nil, fmt.Errorf("certs: ACME cache key: want %d raw bytes or %d hex digits, got %d bytes", ACMECacheKeySize, 2*ACMECacheKeySize, len(data))
	}
	key := make([]byte, ACMECacheKeySize)
	if _, err := hex.Decode(key, text); err != nil {
		return nil, fmt.Errorf("certs: ACME cache key: not hex: %w", err)
	}
	return key, nil
}

// sealer encrypts and authenticates ACME cache entries with AES-256-GCM.
// A sealed entry is: version byte, 12-byte random nonce, ciphertext and tag.
// A random nonce per entry is safe for the few thousand entries a key ever
// seals (GCM's bound is 2^32).
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != ACMECacheKeySize {
		return nil, fmt.Errorf("certs: ACME cache key: want %d bytes, got %d", ACMECacheKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("certs: ACME cache key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("certs: ACME cache key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func aad(name string) []byte { return []byte(sealAADPrefix + name) }

// seal encrypts data stored under name.
func (s *sealer) seal(name string, data []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(data)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("certs: ACME cache nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], data, aad(name)), nil
}

// open decrypts a value read under name. Anything but an entry this key
// sealed for this very name is errEntryTampered.
func (s *sealer) open(name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errEntryTampered
	}
	data, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad(name))
	if err != nil {
		return nil, errEntryTampered
	}
	return data, nil
}
