package authz

import (
	"testing"

	"github.com/pgkube/pgkube/authn"
)

func TestForbiddenMessage(t *testing.T) {
	alice := u("alice")
	tests := []struct {
		a      Attributes
		reason string
		want   string
	}{
		{res(alice, "list", "b", "", "pods", "", ""), "",
			`User "alice" cannot list resource "pods" in API group "" in the namespace "b"`},
		{res(alice, "get", "a", "", "pods", "log", "p"), "",
			`User "alice" cannot get resource "pods/log" in API group "" in the namespace "a"`},
		{res(alice, "list", "", "", "nodes", "", ""), "",
			`User "alice" cannot list resource "nodes" in API group "" at the cluster scope`},
		{res(alice, "create", "a", "apps", "deployments", "", ""), "",
			`User "alice" cannot create resource "deployments" in API group "apps" in the namespace "a"`},
		{path(u(authn.Anonymous), "get", "/foo"), "",
			`User "system:anonymous" cannot get path "/foo"`},
		{res(alice, "get", "a", "", "pods", "", "p"), `RBAC: role.rbac.authorization.k8s.io "x" not found`,
			`User "alice" cannot get resource "pods" in API group "" in the namespace "a": RBAC: role.rbac.authorization.k8s.io "x" not found`},
		// Names come from the request, so markup in them is escaped; the
		// reason comes from the server and is not.
		{path(u("<b>&"), "get", "/x<y>"), "a<b",
			`User "&lt;b&gt;&amp;" cannot get path "/x&lt;y&gt;": a<b`},
		{Attributes{Verb: "get", Path: "/"}, "", `User "" cannot get path "/"`},
	}
	for _, tt := range tests {
		if got := ForbiddenMessage(tt.a, tt.reason); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestForbiddenError(t *testing.T) {
	err := forbidden(res(u("alice"), "get", "a", "", "pods", "", "x"), "")
	want := `pods "x" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "a"`
	if err.Error() != want || err.ErrStatus.Code != 403 {
		t.Errorf("got %d %s\nwant %s", err.ErrStatus.Code, err.Error(), want)
	}
	err = forbidden(res(u("alice"), "list", "", "apps", "deployments", "", ""), "")
	want = `deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err.Error(), want)
	}
}
