package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validation"

	"github.com/pgkube/pgkube/authn"
)

// Impersonate returns the user a request acts as: requester itself when h
// carries no Impersonate-User, -Group, -Uid or -Extra-* header, otherwise
// the impersonated user, once az has allowed requester the "impersonate"
// verb on each thing asked for. It follows kube-apiserver's impersonation
// filter: a 400 when groups, extras or a UID come without a user, a 403
// naming the first thing refused.
func Impersonate(ctx context.Context, az Authorizer, cluster string, requester *authn.User, h http.Header) (*authn.User, error) {
	reqs, err := impersonationRequests(h)
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return requester, nil
	}
	if requester == nil {
		return nil, apierrors.NewInternalError(errors.New("no user found for request"))
	}

	// Groups given are the whole truth, system:authenticated aside; only
	// without them does a service account get its well-known groups.
	groupsGiven := len(h.Values(authenticationv1.ImpersonateGroupHeader)) > 0
	out := &authn.User{}
	groups := []string{}
	for _, ref := range reqs {
		a := Attributes{
			Cluster: cluster, User: requester, Verb: "impersonate", ResourceRequest: true,
			APIGroup: ref.GroupVersionKind().Group, APIVersion: ref.GroupVersionKind().Version,
			Namespace: ref.Namespace, Name: ref.Name,
		}
		switch ref.Kind {
		case "ServiceAccount":
			a.Resource = "serviceaccounts"
			out.Name = authn.ServiceAccountPrefix + ref.Namespace + ":" + ref.Name
			if !groupsGiven {
				groups = []string{authn.ServiceAccountGroup, authn.ServiceAccountGroup + ":" + ref.Namespace}
			}
		case "User":
			a.Resource = "users"
			out.Name = ref.Name
		case "Group":
			a.Resource = "groups"
			groups = append(groups, ref.Name)
		case "UserExtra":
			a.Resource = "userextras"
			a.Subresource = ref.FieldPath
			if out.Extra == nil {
				out.Extra = map[string][]string{}
			}
			out.Extra[ref.FieldPath] = append(out.Extra[ref.FieldPath], ref.Name)
		case "UID":
			a.Resource = "uids"
			out.UID = ref.Name
		}
		d, reason, err := az.Authorize(ctx, a)
		if err != nil || d != Allow {
			return nil, forbidden(a, reason)
		}
	}

	// Everyone impersonated is in exactly one of the two catch-all groups,
	// unless the groups given already place them.
	if out.Name == authn.Anonymous {
		if !slices.Contains(groups, authn.AllUnauthenticated) {
			groups = append(groups, authn.AllUnauthenticated)
		}
	} else if !slices.Contains(groups, authn.AllAuthenticated) && !slices.Contains(groups, authn.AllUnauthenticated) {
		groups = append(groups, authn.AllAuthenticated)
	}
	out.Groups = groups
	return out, nil
}

// impersonationRequests lists what h asks to impersonate, user first,
// then groups, extras (by header name, values in order) and UID, which is
// the order they are authorized in. The references are
// corev1.ObjectReferences because kube-apiserver's 400 message prints them.
func impersonationRequests(h http.Header) ([]corev1.ObjectReference, error) {
	var reqs []corev1.ObjectReference
	user := h.Get(authenticationv1.ImpersonateUserHeader)
	if user != "" {
		if ns, name, ok := splitServiceAccount(user); ok {
			reqs = append(reqs, corev1.ObjectReference{Kind: "ServiceAccount", Namespace: ns, Name: name})
		} else {
			reqs = append(reqs, corev1.ObjectReference{Kind: "User", Name: user})
		}
	}
	others := false
	for _, g := range h.Values(authenticationv1.ImpersonateGroupHeader) {
		others = true
		reqs = append(reqs, corev1.ObjectReference{Kind: "Group", Name: g})
	}
	prefix := authenticationv1.ImpersonateUserExtraHeaderPrefix
	var extraHeaders []string
	for name := range h {
		if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
			extraHeaders = append(extraHeaders, name)
		}
	}
	slices.Sort(extraHeaders)
	for _, name := range extraHeaders {
		others = true
		key := strings.ToLower(name[len(prefix):])
		// A malformed escape is kept as sent rather than dropped, so what
		// is authorized is what ends up in the user.
		if k, err := url.PathUnescape(key); err == nil {
			key = k
		}
		for _, v := range h[name] {
			reqs = append(reqs, corev1.ObjectReference{
				Kind: "UserExtra", APIVersion: authenticationv1.SchemeGroupVersion.String(), Name: v, FieldPath: key,
			})
		}
	}
	if uid := h.Get(authenticationv1.ImpersonateUIDHeader); uid != "" {
		others = true
		reqs = append(reqs, corev1.ObjectReference{Kind: "UID", APIVersion: authenticationv1.SchemeGroupVersion.String(), Name: uid})
	}
	if others && user == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("requested %v without impersonating a user", reqs))
	}
	return reqs, nil
}

// splitServiceAccount parses system:serviceaccount:NS:NAME; a name that
// only looks like one (bad namespace or name) is an ordinary user name.
func splitServiceAccount(user string) (namespace, name string, ok bool) {
	rest, found := strings.CutPrefix(user, authn.ServiceAccountPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 2 {
		return "", "", false
	}
	if len(validation.ValidateNamespaceName(parts[0], false)) > 0 || len(validation.ValidateServiceAccountName(parts[1], false)) > 0 {
		return "", "", false
	}
	return parts[0], parts[1], true
}
