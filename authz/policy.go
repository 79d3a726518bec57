package authz

import (
	"maps"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pgkube/pgkube/authn"
)

// Policy is a set of RBAC objects to create at start.
type Policy struct {
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	Roles               []rbacv1.Role
	RoleBindings        []rbacv1.RoleBinding
}

// The bootstrapping label marks default objects for tools and
// reconcilers; the aggregate-to labels are how admin, edit and view (and
// CRD authors' roles) feed the aggregated roles.
const (
	bootstrapLabel      = "kubernetes.io/bootstrapping"
	bootstrapLabelValue = "rbac-defaults"
	aggregateToAdmin    = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit     = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView     = "rbac.authorization.k8s.io/aggregate-to-view"
)

// API groups and names the default policy uses.
const (
	apiCore         = ""
	apiApps         = "apps"
	apiAuthn        = "authentication.k8s.io"
	apiAuthz        = "authorization.k8s.io"
	apiAutoscaling  = "autoscaling"
	apiBatch        = "batch"
	apiCertificates = "certificates.k8s.io"
	apiCoordination = "coordination.k8s.io"
	apiDiscovery    = "discovery.k8s.io"
	apiEvents       = "events.k8s.io"
	apiExtensions   = "extensions"
	apiNetworking   = "networking.k8s.io"
	apiMetrics      = "metrics.k8s.io"
	apiNode         = "node.k8s.io"
	apiPolicy       = "policy"
	apiStorage      = "storage.k8s.io"
	kubeSystem      = "kube-system"
	kubeCM          = "system:kube-controller-manager"
	kubeScheduler   = "system:kube-scheduler"
)

// DefaultPolicy returns the policy kube-apiserver 1.33 bootstraps with its
// default feature gates, restricted to what pgkube serves: the user-facing
// roles (cluster-admin, admin, edit, view and what aggregates into them),
// discovery and health roles, and the roles of the components pgkube
// expects (one controller manager identity, scheduler, kube-proxy,
// nodes). The rules are upstream's, so "kubectl auth can-i --list" answers
// as it would against kube-apiserver. One choice differs: with no Node
// authorizer, system:node is bound to the group system:nodes.
//
// Each call builds new objects; callers may modify them.
func DefaultPolicy() Policy {
	read := []string{"get", "list", "watch"}
	write := []string{"create", "update", "patch", "delete", "deletecollection"}
	readWrite := append(slices.Clone(read), write...)
	readUpdate := append(slices.Clone(read), "update", "patch")
	eventsRule := rule("create", "update", "patch").groups(apiCore, apiEvents).resources("events")

	var p Policy
	clusterRole := func(name string, labels map[string]string, rs ...ruleSpec) {
		p.ClusterRoles = append(p.ClusterRoles, rbacv1.ClusterRole{ObjectMeta: bootstrapMeta(name, "", labels), Rules: rules(rs...)})
	}
	aggregating := func(name string, labels map[string]string, selectLabel string) {
		p.ClusterRoles = append(p.ClusterRoles, rbacv1.ClusterRole{
			ObjectMeta: bootstrapMeta(name, "", labels),
			AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
				{MatchLabels: map[string]string{selectLabel: "true"}},
			}},
		})
	}

	clusterRole("cluster-admin", nil,
		rule("*").groups("*").resources("*"),
		rule("*").urls("*"))
	clusterRole("system:discovery", nil,
		rule("get").urls("/livez", "/readyz", "/healthz", "/version", "/version/",
			"/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*"))
	clusterRole("system:monitoring", nil,
		rule("get").urls("/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz",
			"/livez/*", "/readyz/*", "/healthz/*"))
	clusterRole("system:basic-user", nil,
		rule("create").groups(apiAuthz).resources("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
		rule("create").groups(apiAuthn).resources("selfsubjectreviews"))
	clusterRole("system:public-info-viewer", nil,
		rule("get").urls("/livez", "/readyz", "/healthz", "/version", "/version/"))

	aggregating("admin", nil, aggregateToAdmin)
	aggregating("edit", map[string]string{aggregateToAdmin: "true"}, aggregateToEdit)
	aggregating("view", map[string]string{aggregateToEdit: "true"}, aggregateToView)

	clusterRole("system:aggregate-to-admin", map[string]string{aggregateToAdmin: "true"},
		rule("create").groups(apiAuthz).resources("localsubjectaccessreviews"),
		rule(readWrite...).groups(rbacv1.GroupName).resources("roles", "rolebindings"))
	clusterRole("system:aggregate-to-edit", map[string]string{aggregateToEdit: "true"},
		// Reading secrets and exec-like subresources is an edit power, not
		// a view one: they expose credentials.
		rule(read...).groups(apiCore).resources("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"),
		rule("impersonate").groups(apiCore).resources("serviceaccounts"),
		rule(write...).groups(apiCore).resources("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"),
		rule("create").groups(apiCore).resources("pods/eviction"),
		rule(write...).groups(apiCore).resources("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
			"services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"),
		rule("create").groups(apiCore).resources("serviceaccounts/token"),
		rule(write...).groups(apiApps).resources("statefulsets", "statefulsets/scale", "daemonsets",
			"deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale"),
		rule(write...).groups(apiAutoscaling).resources("horizontalpodautoscalers"),
		rule(write...).groups(apiBatch).resources("jobs", "cronjobs"),
		rule(write...).groups(apiExtensions).resources("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
			"ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"),
		rule(write...).groups(apiPolicy).resources("poddisruptionbudgets"),
		rule(write...).groups(apiNetworking).resources("networkpolicies", "ingresses"),
		rule(readWrite...).groups(apiCoordination).resources("leases"))
	clusterRole("system:aggregate-to-view", map[string]string{aggregateToView: "true"},
		rule(read...).groups(apiCore).resources("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
			"services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"),
		rule(read...).groups(apiCore).resources("limitranges", "resourcequotas", "bindings", "events",
			"pods/status", "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"),
		// Reading namespaces in a namespace means reading that one: how
		// users learn which namespaces they can use.
		rule(read...).groups(apiCore).resources("namespaces"),
		rule(read...).groups(apiDiscovery).resources("endpointslices"),
		rule(read...).groups(apiApps).resources("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
			"daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale",
			"replicasets", "replicasets/status", "replicasets/scale"),
		rule(read...).groups(apiAutoscaling).resources("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
		rule(read...).groups(apiBatch).resources("jobs", "cronjobs", "cronjobs/status", "jobs/status"),
		rule(read...).groups(apiExtensions).resources("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
			"ingresses", "ingresses/status", "replicasets", "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
			"networkpolicies"),
		rule(read...).groups(apiPolicy).resources("poddisruptionbudgets", "poddisruptionbudgets/status"),
		rule(read...).groups(apiNetworking).resources("networkpolicies", "ingresses", "ingresses/status"),
		// Upstream gets this from metrics-server's
		// system:aggregated-metrics-reader, which aggregates into view
		// (and so edit and admin); pgkube serves metrics.k8s.io itself.
		rule(read...).groups(apiMetrics).resources("pods", "nodes"))

	clusterRole("system:node", nil,
		rule("create").groups(apiAuthn).resources("tokenreviews"),
		rule("create").groups(apiAuthz).resources("subjectaccessreviews", "localsubjectaccessreviews"),
		rule(read...).groups(apiCore).resources("services"),
		rule("create", "get", "list", "watch").groups(apiCore).resources("nodes"),
		rule("update", "patch").groups(apiCore).resources("nodes/status"),
		rule("update", "patch").groups(apiCore).resources("nodes"),
		rule("create", "update", "patch").groups(apiCore).resources("events"),
		rule(read...).groups(apiCore).resources("pods"),
		rule("create", "delete").groups(apiCore).resources("pods"),
		rule("update", "patch").groups(apiCore).resources("pods/status"),
		rule("create").groups(apiCore).resources("pods/eviction"),
		rule("get", "list", "watch").groups(apiCore).resources("secrets", "configmaps"),
		rule("get").groups(apiCore).resources("persistentvolumeclaims", "persistentvolumes"),
		rule("get").groups(apiCore).resources("endpoints"),
		rule("create", "get", "list", "watch").groups(apiCertificates).resources("certificatesigningrequests"),
		rule("get", "create", "update", "patch", "delete").groups(apiCoordination).resources("leases"),
		rule("get").groups(apiStorage).resources("volumeattachments"),
		rule("create").groups(apiCore).resources("serviceaccounts/token"),
		rule("get", "update", "patch").groups(apiCore).resources("persistentvolumeclaims/status"),
		rule("get", "watch", "list").groups(apiStorage).resources("csidrivers"),
		rule("get", "create", "update", "patch", "delete").groups(apiStorage).resources("csinodes"),
		rule("get", "list", "watch").groups(apiNode).resources("runtimeclasses"))
	clusterRole("system:auth-delegator", nil,
		rule("create").groups(apiAuthn).resources("tokenreviews"),
		rule("create").groups(apiAuthz).resources("subjectaccessreviews"))
	clusterRole(kubeCM, nil,
		eventsRule,
		rule("create").groups(apiCoordination).resources("leases"),
		rule("get", "update").groups(apiCoordination).resources("leases").names("kube-controller-manager"),
		rule("create").groups(apiCore).resources("secrets", "serviceaccounts"),
		rule("delete").groups(apiCore).resources("secrets"),
		rule("get").groups(apiCore).resources("namespaces", "secrets", "serviceaccounts", "configmaps"),
		rule("update").groups(apiCore).resources("secrets", "serviceaccounts"),
		rule("create").groups(apiAuthn).resources("tokenreviews"),
		rule("create").groups(apiAuthz).resources("subjectaccessreviews"),
		rule("list", "watch").groups("*").resources("*"),
		rule("create").groups(apiCore).resources("serviceaccounts/token"))
	for _, sub := range []string{"nodeclient", "selfnodeclient"} {
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:"+sub, nil,
			rule("create").groups(apiCertificates).resources("certificatesigningrequests/"+sub))
	}
	clusterRole("system:volume-scheduler", nil,
		rule(readUpdate...).groups(apiCore).resources("persistentvolumes"),
		rule(read...).groups(apiStorage).resources("storageclasses"),
		rule(readUpdate...).groups(apiCore).resources("persistentvolumeclaims"))
	for _, a := range []struct{ role, signer string }{
		{"legacy-unknown-approver", "kubernetes.io/legacy-unknown"},
		{"kubelet-serving-approver", "kubernetes.io/kubelet-serving"},
		{"kube-apiserver-client-approver", "kubernetes.io/kube-apiserver-client"},
		{"kube-apiserver-client-kubelet-approver", "kubernetes.io/kube-apiserver-client-kubelet"},
	} {
		clusterRole("system:certificates.k8s.io:"+a.role, nil,
			rule("approve").groups(apiCertificates).resources("signers").names(a.signer))
	}
	// Trailing-slash forms serve clients generated from an OpenAPI
	// document that once had them.
	clusterRole("system:service-account-issuer-discovery", nil,
		rule("get").urls("/.well-known/openid-configuration", "/.well-known/openid-configuration/",
			"/openid/v1/jwks", "/openid/v1/jwks/"))
	clusterRole("system:node-proxier", nil,
		rule("list", "watch").groups(apiCore).resources("services", "endpoints"),
		rule("get", "list", "watch").groups(apiCore).resources("nodes"),
		eventsRule,
		rule("list", "watch").groups(apiNetworking).resources("servicecidrs"),
		rule("list", "watch").groups(apiDiscovery).resources("endpointslices"))
	clusterRole(kubeScheduler, nil,
		eventsRule,
		rule("create").groups(apiCoordination).resources("leases"),
		rule("get", "update", "list", "watch").groups(apiCoordination).resources("leases").names("kube-scheduler"),
		rule(readWrite...).groups(apiCoordination).resources("leasecandidates"),
		rule(read...).groups(apiCore).resources("nodes"),
		rule("get", "list", "watch", "delete").groups(apiCore).resources("pods"),
		rule("create").groups(apiCore).resources("pods/binding", "bindings"),
		rule("patch", "update").groups(apiCore).resources("pods/status"),
		rule(read...).groups(apiCore).resources("services", "replicationcontrollers"),
		rule(read...).groups(apiApps, apiExtensions).resources("replicasets"),
		rule(read...).groups(apiApps).resources("statefulsets"),
		rule(read...).groups(apiPolicy).resources("poddisruptionbudgets"),
		rule(read...).groups(apiCore).resources("persistentvolumeclaims", "persistentvolumes"),
		rule("create").groups(apiAuthn).resources("tokenreviews"),
		rule("create").groups(apiAuthz).resources("subjectaccessreviews"),
		rule(read...).groups(apiStorage).resources("csinodes"),
		rule("get", "list", "watch").groups(apiStorage).resources("volumeattachments"),
		rule(read...).groups(apiCore).resources("namespaces"),
		rule(read...).groups(apiStorage).resources("csidrivers"),
		rule(read...).groups(apiStorage).resources("csistoragecapacities"))

	clusterBinding := func(role string, subjects ...rbacv1.Subject) {
		p.ClusterRoleBindings = append(p.ClusterRoleBindings, rbacv1.ClusterRoleBinding{
			ObjectMeta: bootstrapMeta(role, "", nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   subjects,
		})
	}
	clusterBinding("cluster-admin", groupSubject(authn.SystemPrivileged))
	clusterBinding("system:monitoring", groupSubject("system:monitoring"))
	clusterBinding("system:discovery", groupSubject(authn.AllAuthenticated))
	clusterBinding("system:basic-user", groupSubject(authn.AllAuthenticated))
	clusterBinding("system:public-info-viewer", groupSubject(authn.AllAuthenticated), groupSubject(authn.AllUnauthenticated))
	clusterBinding("system:node-proxier", userSubject("system:kube-proxy"))
	clusterBinding(kubeCM, userSubject(kubeCM))
	clusterBinding(kubeScheduler, userSubject(kubeScheduler))
	clusterBinding("system:volume-scheduler", userSubject(kubeScheduler))
	clusterBinding("system:node", groupSubject("system:nodes"))
	clusterBinding("system:service-account-issuer-discovery", groupSubject(authn.ServiceAccountGroup))

	role := func(name string, rs ...ruleSpec) {
		p.Roles = append(p.Roles, rbacv1.Role{ObjectMeta: bootstrapMeta(name, kubeSystem, nil), Rules: rules(rs...)})
	}
	role("extension-apiserver-authentication-reader",
		rule("get", "list", "watch").groups(apiCore).resources("configmaps").names("extension-apiserver-authentication"))
	for _, component := range []string{"kube-controller-manager", "kube-scheduler"} {
		role("system::leader-locking-"+component,
			rule("watch").groups(apiCore).resources("configmaps"),
			rule("get", "update").groups(apiCore).resources("configmaps").names(component),
			rule("get", "watch", "list", "create", "update").groups(apiCoordination).resources("leases"),
			rule("get", "watch", "list", "create", "update").groups(apiCoordination).resources("leasecandidates"))
	}

	roleBinding := func(name, role string, subjects ...rbacv1.Subject) {
		p.RoleBindings = append(p.RoleBindings, rbacv1.RoleBinding{
			ObjectMeta: bootstrapMeta(name, kubeSystem, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
			Subjects:   subjects,
		})
	}
	roleBinding("system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader",
		userSubject(kubeCM), userSubject(kubeScheduler))
	roleBinding("system::leader-locking-kube-controller-manager", "system::leader-locking-kube-controller-manager",
		userSubject(kubeCM), serviceAccountSubject(kubeSystem, "kube-controller-manager"), serviceAccountSubject(kubeSystem, "leader-election-controller"))
	roleBinding("system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
		userSubject(kubeScheduler), serviceAccountSubject(kubeSystem, "kube-scheduler"))
	return p
}

func bootstrapMeta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[bootstrapLabel] = bootstrapLabelValue
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   namespace,
		Labels:      l,
		Annotations: map[string]string{rbacv1.AutoUpdateAnnotationKey: "true"},
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: name}
}

func serviceAccountSubject(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// ruleSpec builds a PolicyRule fluently: rule(verbs).groups(...).resources(...).
type ruleSpec rbacv1.PolicyRule

func rule(verbs ...string) ruleSpec { return ruleSpec{Verbs: slices.Clone(verbs)} }

func (r ruleSpec) groups(g ...string) ruleSpec {
	r.APIGroups = append(slices.Clone(r.APIGroups), g...)
	return r
}

func (r ruleSpec) resources(res ...string) ruleSpec {
	r.Resources = append(slices.Clone(r.Resources), res...)
	return r
}

func (r ruleSpec) names(n ...string) ruleSpec {
	r.ResourceNames = append(slices.Clone(r.ResourceNames), n...)
	return r
}

func (r ruleSpec) urls(u ...string) ruleSpec {
	r.NonResourceURLs = append(slices.Clone(r.NonResourceURLs), u...)
	return r
}

// rules finishes specs with every list sorted, as upstream stores them, so
// the objects compare equal to kube-apiserver's and to themselves after a
// round trip.
func rules(specs ...ruleSpec) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(specs))
	for _, s := range specs {
		r := rbacv1.PolicyRule(s)
		r = *r.DeepCopy()
		for _, l := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs} {
			slices.Sort(l)
		}
		out = append(out, r)
	}
	return out
}
