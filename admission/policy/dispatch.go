package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/cel-go/common/types"
	"github.com/pgkube/pgkube/admission"
	admcel "github.com/pgkube/pgkube/admission/cel"
	"github.com/pgkube/pgkube/storage"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// maxMessageBytes bounds a messageExpression's result, as kube-apiserver
// does; a longer one falls back to the static message.
const maxMessageBytes = 5 * 1024

// denial is a failed validation (or configuration error) to report.
type denial struct {
	policy, binding string // binding empty for an error of the policy itself
	message         string
	reason          metav1.StatusReason
}

type plugin struct{ p *Policies }

// Admit evaluates every policy that matches the request through every
// binding that matches it, and rejects the request with the first denial.
func (pl plugin) Admit(ctx context.Context, a *admission.Attributes) error {
	p := pl.p
	snap := p.snapshot(a.Cluster)
	if snap == nil || len(snap.hooks) == 0 || admcel.Exempt(a) {
		return nil
	}
	req := admcel.NewRequest(ctx, a, p.opts.Typer)
	var denials []denial
	configError := func(err error, pol *policy, b *binding) {
		switch pol.failurePolicy {
		case admissionregistrationv1.Ignore:
		case admissionregistrationv1.Fail:
			d := denial{policy: pol.name, message: "failed to configure policy: " + err.Error()}
			if b != nil {
				d.binding, d.message = b.name, "failed to configure binding: "+err.Error()
			}
			denials = append(denials, d)
		default:
			d := denial{policy: pol.name, message: fmt.Sprintf("unrecognized failure policy: '%v'", pol.failurePolicy)}
			if b != nil {
				d.binding = b.name
			}
			denials = append(denials, d)
		}
	}

	for _, h := range snap.hooks {
		pol := h.policy
		if pol.constraints == nil {
			configError(pol.configErr, pol, nil)
			continue
		}
		ok, err := pol.constraints.matches(ctx, req, p.opts.Store)
		if err != nil {
			configError(err, pol, nil)
			continue
		}
		if !ok {
			continue
		}
		if pol.configErr != nil {
			configError(pol.configErr, pol, nil)
			continue
		}
		for _, b := range h.bindings {
			if b.matchErr != nil {
				configError(b.matchErr, pol, b)
				continue
			}
			if b.match != nil {
				ok, err := b.match.matches(ctx, req, p.opts.Store)
				if err != nil {
					configError(err, pol, b)
					continue
				}
				if !ok {
					continue
				}
			}
			params, err := p.params(ctx, req, pol, b)
			if err != nil {
				configError(err, pol, b)
				continue
			}
			ns := func() (map[string]any, error) { return req.NamespaceObject(ctx, p.opts.Store) }
			for _, param := range params {
				for _, d := range pol.validate(ctx, req, param, ns) {
					d.policy, d.binding = pol.name, b.name
					for _, action := range b.actions {
						switch action {
						case admissionregistrationv1.Deny:
							denials = append(denials, d)
						case admissionregistrationv1.Warn:
							p.opts.Warn(ctx, fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s",
								pol.name, b.name, d.message))
						}
						// Audit only annotates the audit event, which pgkube
						// does not record.
					}
				}
			}
		}
	}
	if len(denials) == 0 {
		return nil
	}
	return forbidden(a, denials[0])
}

// forbidden is kube-apiserver's rejection: a Forbidden status whose reason
// and code are the validation's (Invalid, 422, unless it names another).
func forbidden(a *admission.Attributes, d denial) error {
	message := fmt.Sprintf("ValidatingAdmissionPolicy '%s' denied request: %s", d.policy, d.message)
	if d.binding != "" {
		message = fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", d.policy, d.binding, d.message)
	}
	name := a.Name
	if name == "" {
		name = "Unknown"
		if m, err := meta.Accessor(a.Object); err == nil {
			if m.GetName() != "" {
				name = m.GetName()
			} else if m.GetGenerateName() != "" {
				name = m.GetGenerateName()
			}
		}
	}
	se := apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, name, errors.New(message))
	reason := d.reason
	if reason == "" {
		reason = metav1.StatusReasonInvalid
	}
	se.ErrStatus.Reason = reason
	se.ErrStatus.Code = reasonCode(reason)
	se.ErrStatus.Details.Causes = append(se.ErrStatus.Details.Causes, metav1.StatusCause{Message: message})
	return se
}

func reasonCode(r metav1.StatusReason) int32 {
	switch r {
	case metav1.StatusReasonForbidden:
		return http.StatusForbidden
	case metav1.StatusReasonUnauthorized:
		return http.StatusUnauthorized
	case metav1.StatusReasonRequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

// params returns the param objects a binding evaluates its policy with:
// one null when the policy takes none.
func (p *Policies) params(ctx context.Context, req *admcel.Request, pol *policy, b *binding) ([]any, error) {
	ref := b.paramRef
	if pol.paramKind == nil || ref == nil {
		return []any{nil}, nil
	}
	var (
		resource   string
		namespaced bool
		ok         bool
	)
	if p.opts.ParamResource != nil {
		resource, namespaced, ok = p.opts.ParamResource(*pol.paramKind)
	}
	if !ok {
		return nil, fmt.Errorf("failed to find resource referenced by paramKind: '%v'", *pol.paramKind)
	}
	namespace := ""
	switch {
	case namespaced:
		namespace = ref.Namespace
		if namespace == "" {
			namespace = req.Attrs.Namespace
		}
		if namespace == "" {
			return nil, errors.New("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
		}
	case ref.Namespace != "":
		return nil, errors.New("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
	}

	var found []any
	switch {
	case ref.Name != "":
		if ref.Selector != nil {
			return nil, errors.New("paramRef.name and paramRef.selector are mutually exclusive")
		}
		o, err := p.opts.Store.Get(ctx, req.Attrs.Cluster, storage.Key{Resource: resource, Namespace: namespace, Name: ref.Name})
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			v, err := admcel.DecodeJSON(o.Data)
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", o.Key, err)
			}
			found = append(found, v)
		}
	case ref.Selector != nil:
		sel, err := metav1.LabelSelectorAsSelector(ref.Selector)
		if err != nil {
			return nil, err
		}
		res, err := p.opts.Store.List(ctx, req.Attrs.Cluster, storage.ListOptions{Resource: resource, Namespace: namespace, Labels: sel})
		if err != nil {
			return nil, err
		}
		for _, o := range res.Items {
			v, err := admcel.DecodeJSON(o.Data)
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", o.Key, err)
			}
			found = append(found, v)
		}
	default:
		return nil, errors.New("one of name or selector must be provided")
	}
	if len(found) == 0 && ref.ParameterNotFoundAction != nil && *ref.ParameterNotFoundAction == admissionregistrationv1.DenyAction {
		return nil, errors.New("no params found for policy binding with `Deny` parameterNotFoundAction")
	}
	return found, nil
}

// validate evaluates the policy's match conditions and validations over
// one param and returns the denials. Errors deny under failurePolicy Fail
// and are ignored under Ignore.
func (pol *policy) validate(ctx context.Context, req *admcel.Request, param any, ns admcel.NamespaceFunc) []denial {
	act := admcel.NewActivation(req, param, ns, pol.variables)
	budget := admcel.NewBudget(admcel.RuntimeBudget)
	onError := func(msg string) []denial {
		if pol.failurePolicy == admissionregistrationv1.Ignore {
			return nil
		}
		return []denial{{message: msg}}
	}

	if len(pol.conditions) > 0 {
		conds := make([]admcel.Compiled, len(pol.conditions))
		for i, c := range pol.conditions {
			conds[i] = admcel.Compiled{Program: c.prg}
			if c.err != nil {
				conds[i].Err = fmt.Errorf("compilation error: %w", c.err)
			}
		}
		match, errs := admcel.MatchConditions(ctx, conds, act, budget)
		if !match && len(errs) == 0 {
			return nil
		}
		if len(errs) > 0 {
			return onError(utilerrors.NewAggregate(errs).Error())
		}
	}

	var out []denial
	for _, v := range pol.validations {
		if v.err != nil {
			out = append(out, onError("compilation error: "+v.err.Error())...)
			continue
		}
		val, err := v.prg.Eval(ctx, act, budget)
		if errors.Is(err, admcel.ErrOutOfBudget) {
			// Nothing more may run, and what ran does not count.
			return onError(err.Error())
		}
		if err != nil {
			out = append(out, onError(err.Error())...)
			continue
		}
		if val == types.True {
			continue
		}
		d := denial{reason: metav1.StatusReasonInvalid}
		if v.reason != nil {
			d.reason = *v.reason
		}
		if m := v.messageExpression; m.prg != nil {
			mv, err := m.prg.Eval(ctx, act, budget)
			if errors.Is(err, admcel.ErrOutOfBudget) {
				out = append(out, onError("failed messageExpression: "+err.Error())...)
				continue
			}
			if s, ok := mv.(types.String); ok && err == nil {
				msg := strings.TrimSpace(string(s))
				// Overlong or multi-line messages fall back to the static one.
				if len(msg) <= maxMessageBytes && !strings.Contains(msg, "\n") {
					d.message = msg
				}
			}
		}
		if d.message == "" {
			d.message = strings.TrimSpace(v.message)
		}
		if d.message == "" {
			d.message = "failed expression: " + strings.TrimSpace(v.source)
		}
		out = append(out, d)
	}
	return out
}
