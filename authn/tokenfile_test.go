package authn

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTokenFile(t *testing.T) {
	p := writeTokenFile(t, `s3cret,alice,uid-1,"dev, ops"

"quoted,token",bob,uid-2
t3,carol,,admins,ignored-extra-column
`)
	s, err := LoadTokenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	ctx := context.Background()
	u, auds, ok, err := s.AuthenticateToken(ctx, "s3cret")
	if err != nil || !ok || auds != nil {
		t.Fatalf("alice: ok=%v auds=%q err=%v", ok, auds, err)
	}
	if u.Name != "alice" || u.UID != "uid-1" || !slices.Equal(u.Groups, []string{"dev", "ops"}) {
		t.Fatalf("alice = %+v", u)
	}
	if u, _, ok, _ := s.AuthenticateToken(ctx, "quoted,token"); !ok || u.Name != "bob" || len(u.Groups) != 0 {
		t.Fatalf("bob = %+v ok=%v", u, ok)
	}
	if u, _, ok, _ := s.AuthenticateToken(ctx, "t3"); !ok || u.Name != "carol" || !slices.Equal(u.Groups, []string{"admins"}) {
		t.Fatalf("carol = %+v ok=%v", u, ok)
	}
	if _, _, ok, err := s.AuthenticateToken(ctx, "S3CRET"); ok || err != nil {
		t.Fatalf("unknown token: ok=%v err=%v", ok, err)
	}

	// Callers may add groups to what they get; the file's user must not
	// change.
	u.Groups = append(u.Groups[:0], "system:masters")
	if u, _, _, _ := s.AuthenticateToken(ctx, "t3"); !slices.Equal(u.Groups, []string{"admins"}) {
		t.Fatalf("stored user changed through a returned copy: %q", u.Groups)
	}
}

func TestLoadTokenFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"too few columns", "a,alice,1\n\nsecret-b,bob\n", "line 3"},
		{"empty token", "a,alice,1\n,bob,2\n", "line 2: empty token"},
		{"empty user", "a,,1\n", "line 1: empty user name"},
		{"duplicate", "secret-a,alice,1\nsecret-a,bob,2\n", "line 2"},
		{"bad quoting", "a,alice,1\n\"secret-b,bob,2\n", "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTokenFile(writeTokenFile(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-") {
				t.Fatalf("error reveals a token: %v", err)
			}
		})
	}
	if _, err := LoadTokenFile(filepath.Join(t.TempDir(), "missing.csv")); err == nil {
		t.Fatal("missing file: no error")
	}
}
