package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/server"
	"github.com/pgkube/pgkube/storage"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// reviews answers the authentication and authorization APIs that are
// questions rather than state: TokenReview, SelfSubjectReview, the four
// access reviews and TokenRequest.
type reviews struct {
	store      *storage.Store
	authorizer authz.Authorizer
	rbac       *authz.RBAC
	tokens     []authn.TokenAuthenticator
	issuer     func(ctx context.Context, cluster string) (*authn.ServiceAccountIssuer, error)
	audiences  []string
	// maxTokenTTL caps requested token lifetimes.
	maxTokenTTL time.Duration
}

func (rv *reviews) handlers() map[string]server.VirtualCreate {
	return map[string]server.VirtualCreate{
		"authentication.k8s.io/tokenreviews":             rv.tokenReview,
		"authentication.k8s.io/selfsubjectreviews":       rv.selfSubjectReview,
		"authorization.k8s.io/subjectaccessreviews":      rv.subjectAccessReview,
		"authorization.k8s.io/localsubjectaccessreviews": rv.localSubjectAccessReview,
		"authorization.k8s.io/selfsubjectaccessreviews":  rv.selfSubjectAccessReview,
		"authorization.k8s.io/selfsubjectrulesreviews":   rv.selfSubjectRulesReview,
		"/serviceaccounts/token":                         rv.tokenRequest,
	}
}

func invalid(kind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: "authorization.k8s.io", Kind: kind}, name, errs)
}

func (rv *reviews) tokenReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	tr := req.Object.(*authenticationv1.TokenReview)
	if tr.Spec.Token == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenReview"}, tr.Name,
			field.ErrorList{field.Required(field.NewPath("spec", "token"), "")})
	}
	auds := tr.Spec.Audiences
	if len(auds) == 0 {
		auds = rv.audiences
	}
	ctx = authn.WithAudiences(ctx, auds)
	tr.Status = authenticationv1.TokenReviewStatus{}
	for _, ta := range rv.tokens {
		u, accepted, ok, err := ta.AuthenticateToken(ctx, tr.Spec.Token)
		if err != nil {
			tr.Status.Error = err.Error()
			break
		}
		if ok {
			tr.Status.Authenticated = true
			tr.Status.User = userInfo(withAuthenticated(u))
			tr.Status.Audiences = accepted
			tr.Status.Error = ""
			break
		}
	}
	if !tr.Status.Authenticated && tr.Status.Error == "" {
		tr.Status.Error = "the token is not recognised"
	}
	return tr, nil
}

// withAuthenticated adds system:authenticated, as the API's own
// authentication chain does, to a user a token authenticator returned.
func withAuthenticated(u *authn.User) *authn.User {
	if u.InGroup(authn.AllAuthenticated) {
		return u
	}
	c := *u
	c.Groups = append(append([]string{}, u.Groups...), authn.AllAuthenticated)
	return &c
}

func userInfo(u *authn.User) authenticationv1.UserInfo {
	info := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		info.Extra = map[string]authenticationv1.ExtraValue{}
		for k, v := range u.Extra {
			info.Extra[k] = v
		}
	}
	return info
}

func (rv *reviews) selfSubjectReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	r := req.Object.(*authenticationv1.SelfSubjectReview)
	if req.User != nil {
		r.Status.UserInfo = userInfo(req.User)
	}
	return r, nil
}

// access asks the authorizer about spec-described attributes.
func (rv *reviews) access(ctx context.Context, cluster string, u *authn.User, ra *authorizationv1.ResourceAttributes,
	nra *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	a := authz.Attributes{Cluster: cluster, User: u}
	if ra != nil {
		a.ResourceRequest = true
		a.Verb, a.Namespace, a.APIGroup, a.APIVersion = ra.Verb, ra.Namespace, ra.Group, ra.Version
		a.Resource, a.Subresource, a.Name = ra.Resource, ra.Subresource, ra.Name
	} else if nra != nil {
		a.Verb, a.Path = nra.Verb, nra.Path
	}
	decision, reason, err := rv.authorizer.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{Allowed: decision == authz.Allow, Denied: decision == authz.Deny, Reason: reason}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

func checkAttributes(kind string, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) field.ErrorList {
	spec := field.NewPath("spec")
	switch {
	case ra == nil && nra == nil:
		return field.ErrorList{field.Required(spec.Child("resourceAttributes"), "exactly one of nonResourceAttributes or resourceAttributes must be specified")}
	case ra != nil && nra != nil:
		return field.ErrorList{field.Invalid(spec.Child("nonResourceAttributes"), nra, "cannot be specified in combination with resourceAttributes")}
	}
	return nil
}

func (rv *reviews) subjectAccessReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	r := req.Object.(*authorizationv1.SubjectAccessReview)
	errs := checkAttributes("SubjectAccessReview", r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)
	if r.Spec.User == "" && len(r.Spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), r.Spec.User, "at least one of user or group must be specified"))
	}
	if len(errs) > 0 {
		return nil, invalid("SubjectAccessReview", r.Name, errs)
	}
	u := &authn.User{Name: r.Spec.User, UID: r.Spec.UID, Groups: r.Spec.Groups}
	for k, v := range r.Spec.Extra {
		if u.Extra == nil {
			u.Extra = map[string][]string{}
		}
		u.Extra[k] = v
	}
	r.Status = rv.access(ctx, req.Cluster, u, r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)
	return r, nil
}

func (rv *reviews) localSubjectAccessReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	r := req.Object.(*authorizationv1.LocalSubjectAccessReview)
	errs := checkAttributes("LocalSubjectAccessReview", r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)
	if r.Spec.NonResourceAttributes != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "nonResourceAttributes"), r.Spec.NonResourceAttributes,
			"disallowed on this kind of request"))
	}
	if r.Spec.User == "" && len(r.Spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), r.Spec.User, "at least one of user or group must be specified"))
	}
	if len(errs) > 0 {
		return nil, invalid("LocalSubjectAccessReview", r.Name, errs)
	}
	if r.Spec.ResourceAttributes.Namespace == "" {
		r.Spec.ResourceAttributes.Namespace = req.Namespace
	}
	if r.Spec.ResourceAttributes.Namespace != req.Namespace {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("spec.resourceAttributes.namespace must match namespace: %v", req.Namespace))
	}
	u := &authn.User{Name: r.Spec.User, UID: r.Spec.UID, Groups: r.Spec.Groups}
	r.Status = rv.access(ctx, req.Cluster, u, r.Spec.ResourceAttributes, nil)
	return r, nil
}

func (rv *reviews) selfSubjectAccessReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	r := req.Object.(*authorizationv1.SelfSubjectAccessReview)
	if errs := checkAttributes("SelfSubjectAccessReview", r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes); len(errs) > 0 {
		return nil, invalid("SelfSubjectAccessReview", r.Name, errs)
	}
	r.Status = rv.access(ctx, req.Cluster, req.User, r.Spec.ResourceAttributes, r.Spec.NonResourceAttributes)
	return r, nil
}

func (rv *reviews) selfSubjectRulesReview(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	r := req.Object.(*authorizationv1.SelfSubjectRulesReview)
	rules, incomplete := rv.rbac.RulesFor(req.Cluster, req.User, r.Spec.Namespace)
	r.Status = authorizationv1.SubjectRulesReviewStatus{Incomplete: incomplete,
		ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
	for _, p := range rules {
		if len(p.NonResourceURLs) > 0 {
			r.Status.NonResourceRules = append(r.Status.NonResourceRules, authorizationv1.NonResourceRule{
				Verbs: p.Verbs, NonResourceURLs: p.NonResourceURLs})
			continue
		}
		r.Status.ResourceRules = append(r.Status.ResourceRules, authorizationv1.ResourceRule{
			Verbs: p.Verbs, APIGroups: p.APIGroups, Resources: p.Resources, ResourceNames: p.ResourceNames})
	}
	return r, nil
}

// object reads the metadata of a stored object for token binding.
func (rv *reviews) object(ctx context.Context, cluster, resource, namespace, name string) (*metav1.ObjectMeta, []byte, error) {
	o, err := rv.store.Get(ctx, cluster, storage.Key{Resource: resource, Namespace: namespace, Name: name})
	if err != nil {
		return nil, nil, err
	}
	var m struct {
		Meta metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(o.Data, &m); err != nil {
		return nil, nil, err
	}
	return &m.Meta, o.Data, nil
}

func (rv *reviews) tokenRequest(ctx context.Context, req server.VirtualRequest) (runtime.Object, error) {
	tr := req.Object.(*authenticationv1.TokenRequest)
	saGR := schema.GroupResource{Resource: "serviceaccounts"}
	sa, _, err := rv.object(ctx, req.Cluster, "/serviceaccounts", req.Namespace, req.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, apierrors.NewNotFound(saGR, req.Name)
	}
	if err != nil {
		return nil, err
	}
	spec := field.NewPath("spec")
	if tr.Spec.ExpirationSeconds == nil {
		s := int64(3600)
		tr.Spec.ExpirationSeconds = &s
	}
	ttl := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	if ttl < 10*time.Minute {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenRequest"}, req.Name,
			field.ErrorList{field.Invalid(spec.Child("expirationSeconds"), *tr.Spec.ExpirationSeconds, "may not specify a duration less than 10 minutes")})
	}
	if ttl > rv.maxTokenTTL {
		ttl = rv.maxTokenTTL
		s := int64(ttl / time.Second)
		tr.Spec.ExpirationSeconds = &s
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = rv.audiences
	}
	now := time.Now()
	claims := authn.TokenClaims{Audiences: tr.Spec.Audiences, IssuedAt: now, Expiry: now.Add(ttl),
		Namespace: req.Namespace, ServiceAccount: sa.Name, ServiceAccountUID: string(sa.UID)}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		if err := rv.bind(ctx, req, sa, ref, &claims); err != nil {
			return nil, err
		}
	}
	issuer, err := rv.issuer(ctx, req.Cluster)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	token, err := issuer.Issue(claims)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	tr.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(claims.Expiry)}
	tr.Name, tr.Namespace = sa.Name, req.Namespace
	tr.CreationTimestamp = metav1.NewTime(now)
	return tr, nil
}

// bind ties the token to a pod, secret or node: it is valid only while that
// object exists with the same UID.
func (rv *reviews) bind(ctx context.Context, req server.VirtualRequest, sa *metav1.ObjectMeta, ref *authenticationv1.BoundObjectReference,
	claims *authn.TokenClaims) error {
	gk := schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenRequest"}
	path := field.NewPath("spec", "boundObjectRef")
	var resource, namespace string
	switch {
	case ref.APIVersion == "v1" && ref.Kind == "Pod":
		resource, namespace = "/pods", req.Namespace
	case ref.APIVersion == "v1" && ref.Kind == "Secret":
		resource, namespace = "/secrets", req.Namespace
	case ref.APIVersion == "v1" && ref.Kind == "Node":
		resource = "/nodes"
	default:
		return apierrors.NewInvalid(gk, req.Name, field.ErrorList{field.NotSupported(path.Child("kind"), ref.APIVersion+" "+ref.Kind,
			[]string{"v1 Pod", "v1 Secret", "v1 Node"})})
	}
	if ref.Name == "" {
		return apierrors.NewInvalid(gk, req.Name, field.ErrorList{field.Required(path.Child("name"), "")})
	}
	meta, data, err := rv.object(ctx, req.Cluster, resource, namespace, ref.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: resource[1:]}, ref.Name)
	}
	if err != nil {
		return err
	}
	if ref.UID != "" && ref.UID != meta.UID {
		return apierrors.NewConflict(schema.GroupResource{Resource: resource[1:]}, ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	bound := &authn.BoundObject{Name: meta.Name, UID: string(meta.UID)}
	switch ref.Kind {
	case "Pod":
		var pod corev1.Pod
		if err := json.Unmarshal(data, &pod); err != nil {
			return err
		}
		saName := pod.Spec.ServiceAccountName
		if saName == "" {
			saName = "default"
		}
		if saName != sa.Name {
			return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", sa.Name))
		}
		claims.Pod = bound
		if pod.Spec.NodeName != "" {
			if node, _, err := rv.object(ctx, req.Cluster, "/nodes", "", pod.Spec.NodeName); err == nil {
				claims.Node = &authn.BoundObject{Name: node.Name, UID: string(node.UID)}
			}
		}
	case "Secret":
		claims.Secret = bound
	case "Node":
		claims.Node = bound
	}
	ref.UID = meta.UID
	return nil
}

// boundLookup lets service-account token validation check that the objects
// a token names still exist.
type boundLookup struct {
	store *storage.Store
}

func (b boundLookup) LookupUID(ctx context.Context, resource, namespace, name string) (uid string, deleting bool, found bool, err error) {
	o, err := b.store.Get(ctx, clusters.From(ctx), storage.Key{Resource: "/" + resource, Namespace: namespace, Name: name})
	if errors.Is(err, storage.ErrNotFound) {
		return "", false, false, nil
	}
	if err != nil {
		return "", false, false, err
	}
	var m struct {
		Meta metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(o.Data, &m); err != nil {
		return "", false, false, err
	}
	return string(m.Meta.UID), m.Meta.DeletionTimestamp != nil, true, nil
}
