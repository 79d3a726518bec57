package authz

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// request is an Attributes digested once per Authorize call, so that
// checking each of possibly hundreds of rules allocates nothing.
type request struct {
	verb     string
	group    string
	resource string // "pods", or "pods/log" when a subresource is asked for
	sub      string
	name     string
	path     string
	isRes    bool
}

func newRequest(a *Attributes) request {
	r := request{
		verb:  a.Verb,
		group: a.APIGroup,
		name:  a.Name,
		path:  a.Path,
		sub:   a.Subresource,
		isRes: a.ResourceRequest,
	}
	r.resource = a.Resource
	if a.Subresource != "" {
		r.resource = a.Resource + "/" + a.Subresource
	}
	return r
}

// allows reports whether rule grants req, with kube-apiserver's wildcard
// rules: "*" verbs, groups and resources; "*/sub" for a subresource of any
// resource; nonResourceURLs matched exactly or by a trailing-"*" prefix.
func (req *request) allows(rule *rbacv1.PolicyRule) bool {
	if !containsOrStar(rule.Verbs, req.verb, rbacv1.VerbAll) {
		return false
	}
	if !req.isRes {
		return urlMatches(rule.NonResourceURLs, req.path)
	}
	return containsOrStar(rule.APIGroups, req.group, rbacv1.APIGroupAll) &&
		resourceMatches(rule.Resources, req.resource, req.sub) &&
		nameMatches(rule.ResourceNames, req.name)
}

func containsOrStar(list []string, want, star string) bool {
	for _, x := range list {
		if x == want || x == star {
			return true
		}
	}
	return false
}

func resourceMatches(rules []string, combined, sub string) bool {
	for _, r := range rules {
		if r == rbacv1.ResourceAll || r == combined {
			return true
		}
		// "*/scale" grants the scale subresource of every resource; a
		// "pods/*" form is deliberately not a wildcard, as upstream.
		if sub != "" && len(r) == len(sub)+2 && r[0] == '*' && r[1] == '/' && r[2:] == sub {
			return true
		}
	}
	return false
}

// nameMatches: a rule naming objects never grants requests that name none
// (list, watch, create), since it cannot tell which objects they touch.
func nameMatches(names []string, name string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func urlMatches(urls []string, path string) bool {
	for _, u := range urls {
		if u == rbacv1.NonResourceAll || u == path {
			return true
		}
		if strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")) {
			return true
		}
	}
	return false
}
