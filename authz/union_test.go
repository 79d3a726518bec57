package authz

import (
	"context"
	"errors"
	"testing"
)

type fixed struct {
	d      Decision
	reason string
	err    error
	calls  *int
}

func (f fixed) Authorize(context.Context, Attributes) (Decision, string, error) {
	if f.calls != nil {
		*f.calls++
	}
	return f.d, f.reason, f.err
}

func TestUnion(t *testing.T) {
	errA, errB := errors.New("a broke"), errors.New("b broke")
	tests := []struct {
		name    string
		u       Union
		want    Decision
		reason  string
		err     string
		skipped bool // the last authorizer must not be asked
	}{
		{"empty", Union{}, NoOpinion, "", "", false},
		{"first allow wins", Union{fixed{d: Allow, reason: "yes"}, fixed{d: Deny, reason: "no"}}, Allow, "yes", "", true},
		{"first deny wins", Union{fixed{d: Deny, reason: "no"}, fixed{d: Allow, reason: "yes"}}, Deny, "no", "", true},
		{"no opinion falls through", Union{fixed{d: NoOpinion, reason: "dunno"}, fixed{d: Allow, reason: "yes"}}, Allow, "yes", "", false},
		{"error does not stop the chain", Union{fixed{err: errA}, fixed{d: Allow}}, Allow, "", "", false},
		{"deciding authorizer's error is returned", Union{fixed{err: errA}, fixed{d: Deny, err: errB}}, Deny, "", "b broke", false},
		{"nobody decides: reasons joined, errors aggregated", Union{fixed{reason: "r1", err: errA}, fixed{}, fixed{reason: "r2", err: errB}},
			NoOpinion, "r1\nr2", "[a broke, b broke]", false},
		{"privileged group", Union{PrivilegedGroups{"system:masters"}, fixed{d: Deny}}, Allow, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			if n := len(tt.u); n > 0 {
				if f, ok := tt.u[n-1].(fixed); ok {
					f.calls = &calls
					tt.u[n-1] = f
				}
			}
			d, reason, err := tt.u.Authorize(context.Background(), Attributes{User: u("root", "system:masters")})
			errText := ""
			if err != nil {
				errText = err.Error()
			}
			if d != tt.want || reason != tt.reason || errText != tt.err {
				t.Errorf("got %v %q %q, want %v %q %q", d, reason, errText, tt.want, tt.reason, tt.err)
			}
			if tt.skipped && calls != 0 {
				t.Error("authorizer after the decision was asked")
			}
		})
	}
}

func TestPrivilegedGroups(t *testing.T) {
	p := PrivilegedGroups{"system:masters", "admins"}
	for _, tt := range []struct {
		name string
		a    Attributes
		want Decision
	}{
		{"member", Attributes{User: u("x", "a", "system:masters")}, Allow},
		{"other group listed", Attributes{User: u("x", "admins")}, Allow},
		{"not a member", Attributes{User: u("system:masters", "system:authenticated")}, NoOpinion},
		{"no user", Attributes{}, NoOpinion},
	} {
		d, reason, err := p.Authorize(context.Background(), tt.a)
		if d != tt.want || reason != "" || err != nil {
			t.Errorf("%s: %v %q %v, want %v", tt.name, d, reason, err, tt.want)
		}
	}
}
