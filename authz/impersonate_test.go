package authz

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pgkube/pgkube/authn"
)

func impersonationFixture() *RBAC {
	r := NewRBAC()
	imp := func(group, resource string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: []string{"impersonate"}, APIGroups: []string{group}, Resources: []string{resource}, ResourceNames: names}
	}
	r.Replace(root, []runtime.Object{
		testClusterRole("impersonator",
			imp("", "users", "bob", authn.Anonymous, "system:serviceaccount:a:b:c"),
			imp("", "groups", "devs", authn.AllUnauthenticated),
			imp("authentication.k8s.io", "uids", "1234"),
			imp("authentication.k8s.io", "userextras/scopes", "view", "list"),
			imp("authentication.k8s.io", "userextras/example.com/team", "blue"),
		),
		testClusterRole("sa-impersonator", imp("", "serviceaccounts")),
		testCRB("alice", "impersonator", userSubject("alice")),
		testRB("a", "alice", "ClusterRole", "sa-impersonator", userSubject("alice")),
	})
	return r
}

type headers [][2]string

func (hs headers) http() http.Header {
	h := http.Header{}
	for _, kv := range hs {
		h.Add(kv[0], kv[1])
	}
	return h
}

func TestImpersonate(t *testing.T) {
	r := impersonationFixture()
	alice := u("alice", authn.AllAuthenticated)
	tests := []struct {
		name string
		h    headers
		want *authn.User
		err  string
		code int32
	}{
		{"no headers", nil, alice, "", 0},
		{"unrelated headers", headers{{"Authorization", "Bearer x"}, {"Impersonate", "bob"}}, alice, "", 0},
		{"user", headers{{"Impersonate-User", "bob"}},
			&authn.User{Name: "bob", Groups: []string{authn.AllAuthenticated}}, "", 0},
		{"user denied", headers{{"Impersonate-User", "eve"}}, nil,
			`users "eve" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`, 403},
		{"user and group", headers{{"Impersonate-User", "bob"}, {"Impersonate-Group", "devs"}},
			&authn.User{Name: "bob", Groups: []string{"devs", authn.AllAuthenticated}}, "", 0},
		{"group denied", headers{{"Impersonate-User", "bob"}, {"Impersonate-Group", "devs"}, {"Impersonate-Group", "admins"}}, nil,
			`groups "admins" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope`, 403},
		{"unauthenticated group given", headers{{"Impersonate-User", "bob"}, {"Impersonate-Group", authn.AllUnauthenticated}},
			&authn.User{Name: "bob", Groups: []string{authn.AllUnauthenticated}}, "", 0},
		{"anonymous", headers{{"Impersonate-User", authn.Anonymous}},
			&authn.User{Name: authn.Anonymous, Groups: []string{authn.AllUnauthenticated}}, "", 0},
		{"anonymous with groups", headers{{"Impersonate-User", authn.Anonymous}, {"Impersonate-Group", "devs"}},
			&authn.User{Name: authn.Anonymous, Groups: []string{"devs", authn.AllUnauthenticated}}, "", 0},
		{"service account", headers{{"Impersonate-User", "system:serviceaccount:a:robot"}},
			&authn.User{Name: "system:serviceaccount:a:robot", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:a", authn.AllAuthenticated}}, "", 0},
		{"service account with groups", headers{{"Impersonate-User", "system:serviceaccount:a:robot"}, {"Impersonate-Group", "devs"}},
			&authn.User{Name: "system:serviceaccount:a:robot", Groups: []string{"devs", authn.AllAuthenticated}}, "", 0},
		{"service account is checked in its namespace", headers{{"Impersonate-User", "system:serviceaccount:b:robot"}}, nil,
			`serviceaccounts "robot" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "b"`, 403},
		{"malformed service account name is a user name", headers{{"Impersonate-User", "system:serviceaccount:a:b:c"}},
			&authn.User{Name: "system:serviceaccount:a:b:c", Groups: []string{authn.AllAuthenticated}}, "", 0},
		{"invalid namespace makes a user name", headers{{"Impersonate-User", "system:serviceaccount:A_B:robot"}}, nil,
			`users "system:serviceaccount:A_B:robot" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`, 403},
		{"uid", headers{{"Impersonate-User", "bob"}, {"Impersonate-Uid", "1234"}},
			&authn.User{Name: "bob", UID: "1234", Groups: []string{authn.AllAuthenticated}}, "", 0},
		{"uid denied", headers{{"Impersonate-User", "bob"}, {"Impersonate-Uid", "999"}}, nil,
			`uids.authentication.k8s.io "999" is forbidden: User "alice" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope`, 403},
		{"extras", headers{{"Impersonate-User", "bob"}, {"Impersonate-Extra-Scopes", "view"}, {"impersonate-extra-scopes", "list"}, {"Impersonate-Extra-Example.com%2fteam", "blue"}},
			&authn.User{Name: "bob", Groups: []string{authn.AllAuthenticated}, Extra: map[string][]string{"scopes": {"view", "list"}, "example.com/team": {"blue"}}}, "", 0},
		{"extra denied", headers{{"Impersonate-User", "bob"}, {"Impersonate-Extra-Scopes", "edit"}}, nil,
			`userextras.authentication.k8s.io "edit" is forbidden: User "alice" cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope`, 403},
		{"group without user", headers{{"Impersonate-Group", "devs"}}, nil,
			`requested [{Group  devs    }] without impersonating a user`, 400},
		{"uid without user", headers{{"Impersonate-Uid", "1234"}}, nil,
			`requested [{UID  1234  authentication.k8s.io/v1  }] without impersonating a user`, 400},
		{"extra without user", headers{{"Impersonate-Extra-Scopes", "view"}}, nil,
			`requested [{UserExtra  view  authentication.k8s.io/v1  scopes}] without impersonating a user`, 400},
		{"empty user is no user", headers{{"Impersonate-User", ""}, {"Impersonate-Group", "devs"}}, nil,
			`requested [{Group  devs    }] without impersonating a user`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Impersonate(context.Background(), r, root, alice, tt.h.http())
			if tt.err != "" {
				var status *apierrors.StatusError
				if !errors.As(err, &status) || err.Error() != tt.err || status.ErrStatus.Code != tt.code {
					t.Fatalf("error %v, want %d %s", err, tt.code, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestImpersonateAsksAuthorizer(t *testing.T) {
	var asked []Attributes
	az := authorizerFunc(func(a Attributes) (Decision, string, error) {
		asked = append(asked, a)
		return Allow, "", nil
	})
	h := headers{{"Impersonate-User", "system:serviceaccount:ns:sa"}, {"Impersonate-Group", "g"}, {"Impersonate-Extra-K", "v"}, {"Impersonate-Uid", "u1"}}.http()
	alice := u("alice")
	if _, err := Impersonate(context.Background(), az, "tenant", alice, h); err != nil {
		t.Fatal(err)
	}
	base := Attributes{Cluster: "tenant", User: alice, Verb: "impersonate", ResourceRequest: true}
	with := func(f func(*Attributes)) Attributes { a := base; f(&a); return a }
	want := []Attributes{
		with(func(a *Attributes) { a.Resource, a.Namespace, a.Name = "serviceaccounts", "ns", "sa" }),
		with(func(a *Attributes) { a.Resource, a.Name = "groups", "g" }),
		with(func(a *Attributes) {
			a.APIGroup, a.APIVersion, a.Resource, a.Subresource, a.Name = "authentication.k8s.io", "v1", "userextras", "k", "v"
		}),
		with(func(a *Attributes) {
			a.APIGroup, a.APIVersion, a.Resource, a.Name = "authentication.k8s.io", "v1", "uids", "u1"
		}),
	}
	if !reflect.DeepEqual(asked, want) {
		t.Errorf("asked\n%+v\nwant\n%+v", asked, want)
	}

	// An authorizer that fails refuses, even if it claims to allow.
	failing := authorizerFunc(func(Attributes) (Decision, string, error) { return Allow, "", errors.New("boom") })
	if _, err := Impersonate(context.Background(), failing, root, alice, headers{{"Impersonate-User", "bob"}}.http()); !apierrors.IsForbidden(err) {
		t.Errorf("failing authorizer: %v, want Forbidden", err)
	}
	// A denial's reason is part of the message.
	deny := authorizerFunc(func(Attributes) (Decision, string, error) { return Deny, "not today", nil })
	_, err := Impersonate(context.Background(), deny, root, alice, headers{{"Impersonate-User", "bob"}}.http())
	if want := `users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope: not today`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// Impersonating with no requester is a server error, not a pass.
	if _, err := Impersonate(context.Background(), az, root, nil, headers{{"Impersonate-User", "bob"}}.http()); !apierrors.IsInternalError(err) {
		t.Errorf("no requester: %v", err)
	}
}

type authorizerFunc func(Attributes) (Decision, string, error)

func (f authorizerFunc) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	return f(a)
}
