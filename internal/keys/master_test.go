package keys_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/keys"
)

func TestLoadMaster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, 32)
	good := base64.StdEncoding.EncodeToString(key)
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	short := base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodFile := file("good", good+"\n")
	otherFile := file("other", other+"\n")

	reference, err := keys.NewLocalMaster(key)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := reference.Encrypt([]byte("keyset"), []byte("tenant 1"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		env     string
		file    string
		wantErr error
		wantIn  string // in the error message
		wantKey bool   // loaded key is `key`
	}{
		{name: "from environment", env: good, wantKey: true},
		{name: "environment with surrounding space", env: "  " + good + "\n", wantKey: true},
		{name: "from file", file: goodFile, wantKey: true},
		{name: "environment wins over file", env: good, file: otherFile, wantKey: true},
		{name: "environment wins over missing file", env: good, file: filepath.Join(dir, "missing"), wantKey: true},
		{name: "nothing configured", wantErr: keys.ErrNoMasterKey},
		{name: "garbage", env: "not base64 at all!", wantErr: keys.ErrBadMasterKey, wantIn: "not standard base64"},
		{name: "too short", env: short, wantErr: keys.ErrBadMasterKey, wantIn: "16 bytes, want 32"},
		{name: "hex instead of base64", env: strings.Repeat("ab", 32), wantErr: keys.ErrBadMasterKey, wantIn: "48 bytes, want 32"},
		{name: "empty file", file: file("empty", "\n"), wantErr: keys.ErrBadMasterKey, wantIn: "is empty"},
		{name: "garbage file", file: file("garbage", "%%%"), wantErr: keys.ErrBadMasterKey, wantIn: "garbage"},
		{name: "missing file", file: filepath.Join(dir, "missing"), wantErr: fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := keys.LoadMaster(tc.env, tc.file)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("LoadMaster error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantIn) {
					t.Fatalf("error %q does not say %q", err, tc.wantIn)
				}
				if tc.env != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.env)) {
					t.Fatalf("error %q repeats the configured key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pt, err := m.Decrypt(wrapped, []byte("tenant 1"))
			if tc.wantKey && (err != nil || string(pt) != "keyset") {
				t.Fatalf("loaded master does not unwrap what the configured key wrapped: %v", err)
			}
			if _, err := m.Decrypt(wrapped, []byte("tenant 2")); err == nil {
				t.Fatal("master unwrapped with other associated data")
			}
		})
	}
}

func TestNewLocalMasterRefusesOtherSizes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := keys.NewLocalMaster(make([]byte, n)); !errors.Is(err, keys.ErrBadMasterKey) {
			t.Errorf("NewLocalMaster(%d bytes): %v, want ErrBadMasterKey", n, err)
		}
	}
}

func TestGenerateMasterKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	for _, p := range []string{a, b} {
		if err := keys.GenerateMasterKeyFile(p); err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Fatalf("%s has mode %o, want 600", p, perm)
		}
		if _, err := keys.LoadMaster("", p); err != nil {
			t.Fatalf("generated file does not load: %v", err)
		}
	}
	contentA, _ := os.ReadFile(a)
	contentB, _ := os.ReadFile(b)
	if bytes.Equal(contentA, contentB) {
		t.Fatal("two generated keys are equal")
	}

	if err := keys.GenerateMasterKeyFile(a); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("generating over an existing key file: %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(a); !bytes.Equal(after, contentA) {
		t.Fatal("an existing key file was overwritten")
	}
}
