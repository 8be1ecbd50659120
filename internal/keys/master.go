package keys

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead/subtle"
)

// Master wraps and unwraps tenant keysets: the key-encryption key of the envelope. Its method
// set is tink's tink.AEAD, so a tink KMS client's AEAD (AWS KMS, GCP KMS, Vault) is a Master as
// it is. Encrypt must be randomised and authenticated; Decrypt must fail when the ciphertext or
// the associated data differ from what was encrypted.
type Master interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

// MasterKeySize is the length of a local master key: an AES-256-GCM key.
const MasterKeySize = 32

// Master key errors.
var (
	// ErrNoMasterKey means neither a key nor a key file was configured.
	ErrNoMasterKey = errors.New("keys: no master key configured")
	// ErrBadMasterKey means the configured key is not 32 bytes in standard base64.
	ErrBadMasterKey = errors.New("keys: invalid master key")
)

// LocalMaster is a Master holding its AES-256-GCM key in process memory, for installations
// without a KMS. Whoever reads the key (environment, file) can unwrap every tenant keyset.
type LocalMaster struct {
	aead *subtle.AESGCM
}

// NewLocalMaster returns a LocalMaster using key, which must be MasterKeySize random bytes.
func NewLocalMaster(key []byte) (*LocalMaster, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadMasterKey, len(key), MasterKeySize)
	}
	a, err := subtle.NewAESGCM(key)
	if err != nil {
		return nil, fmt.Errorf("keys: master key: %w", err)
	}
	return &LocalMaster{aead: a}, nil
}

// Encrypt wraps plaintext (a serialised keyset) bound to associatedData.
func (m *LocalMaster) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return m.aead.Encrypt(plaintext, associatedData)
}

// Decrypt unwraps what Encrypt produced with the same associatedData.
func (m *LocalMaster) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return m.aead.Decrypt(ciphertext, associatedData)
}

// String keeps the key out of logs and panics that print the value.
func (m *LocalMaster) String() string { return "keys.LocalMaster(redacted)" }

// LoadMaster builds the local master key from configuration: base64Key (the value of
// TENANTRY_MASTER_KEY) when set, otherwise the contents of keyFile (TENANTRY_MASTER_KEY_FILE).
// Either holds 32 random bytes in standard base64, as GenerateMasterKeyFile or
// `openssl rand -base64 32` writes them. Errors never contain the key.
func LoadMaster(base64Key, keyFile string) (Master, error) {
	var encoded, source string
	switch {
	case strings.TrimSpace(base64Key) != "":
		encoded, source = base64Key, "master key from environment"
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("keys: read master key file: %w", err)
		}
		encoded, source = string(b), "master key file "+keyFile
	default:
		return nil, ErrNoMasterKey
	}
	encoded = strings.TrimSpace(encoded)
	if encoded == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrBadMasterKey, source)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not standard base64", ErrBadMasterKey, source)
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("%w: %s decodes to %d bytes, want %d", ErrBadMasterKey, source, len(key), MasterKeySize)
	}
	return NewLocalMaster(key)
}

// GenerateMasterKeyFile writes a fresh random master key, in base64, to a new file at path
// readable by its owner only. It refuses to overwrite an existing file: replacing a master key
// makes every tenant keyset wrapped with it, and so all tenant data, unreadable.
func GenerateMasterKeyFile(path string) error {
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("keys: generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keys: create master key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("keys: write master key file: %w", err)
	}
	return nil
}
