package authn

import (
	"context"
	"slices"
	"testing"
)

func TestAudiencesContext(t *testing.T) {
	if got := AudiencesFrom(context.Background()); got != nil {
		t.Fatalf("no audiences set: got %q", got)
	}
	in := []string{"api", "vault"}
	ctx := WithAudiences(context.Background(), in)
	in[0] = "changed"
	if got := AudiencesFrom(ctx); !slices.Equal(got, []string{"api", "vault"}) {
		t.Fatalf("AudiencesFrom = %q, want the audiences as they were passed", got)
	}
}

func TestIntersectAudiences(t *testing.T) {
	got := intersectAudiences([]string{"a", "b", "c"}, []string{"c", "x", "a", "a"})
	if !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("got %q, want [c a]", got)
	}
	if got := intersectAudiences([]string{"a"}, nil); len(got) != 0 {
		t.Fatalf("nothing wanted: got %q", got)
	}
}

func TestAudienceAgnostic(t *testing.T) {
	static := NewStaticTokens(map[string]User{"tok": {Name: "alice"}})
	a := AudienceAgnostic{Implicit: []string{"https://kubernetes.default.svc"}, Token: static}

	ctx := WithAudiences(context.Background(), []string{"other", "https://kubernetes.default.svc"})
	u, auds, ok, err := a.AuthenticateToken(ctx, "tok")
	if err != nil || !ok || u.Name != "alice" {
		t.Fatalf("API audience: got %v %v %v", u, ok, err)
	}
	if !slices.Equal(auds, []string{"https://kubernetes.default.svc"}) {
		t.Fatalf("audiences = %q, want only the API audience", auds)
	}

	ctx = WithAudiences(context.Background(), []string{"vault"})
	if _, _, ok, err := a.AuthenticateToken(ctx, "tok"); ok || err != nil {
		t.Fatalf("foreign audience: ok=%v err=%v, want not ok", ok, err)
	}
	if _, _, ok, err := a.AuthenticateToken(context.Background(), "tok"); ok || err != nil {
		t.Fatalf("no audience requested: ok=%v err=%v, want not ok", ok, err)
	}
}
