package webhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/pgkube/pgkube/admission"
	admcel "github.com/pgkube/pgkube/admission/cel"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	sigsjson "sigs.k8s.io/json"
)

// shouldCall tells whether h applies to the request: selectors, rules and
// match conditions, in kube-apiserver's order (a selector's error counts
// only for a webhook whose rules match).
func (w *Webhooks) shouldCall(ctx context.Context, h *hook, req *admcel.Request) (bool, error) {
	if h.selectorErr != nil {
		return false, apierrors.NewInternalError(h.selectorErr)
	}
	nsMatch, nsErr := admcel.NamespaceSelectorMatches(ctx, h.namespaceSel, req, w.opts.Store)
	if !nsMatch && nsErr == nil {
		return false, nil
	}
	if !admcel.ObjectSelectorMatches(h.objectSel, req) {
		return false, nil
	}
	// matchPolicy Equivalent would also try the rules against other
	// versions of the resource; pgkube serves each kind in one version, so
	// both policies match alike.
	matched := false
	for _, r := range h.rules {
		if admcel.RuleMatches(r, req) {
			matched = true
			break
		}
	}
	if !matched {
		return false, nil
	}
	if nsErr != nil {
		var se *apierrors.StatusError
		if errors.As(nsErr, &se) {
			return false, se
		}
		return false, apierrors.NewInternalError(nsErr)
	}
	return w.conditionsMatch(ctx, h, req)
}

// conditionsMatch evaluates h's match conditions: any false skips the
// webhook; errors (with none false) follow the failure policy.
func (w *Webhooks) conditionsMatch(ctx context.Context, h *hook, req *admcel.Request) (bool, error) {
	if len(h.conditions) == 0 {
		return true, nil
	}
	conds := make([]admcel.Compiled, len(h.conditions))
	for i, c := range h.conditions {
		conds[i] = admcel.Compiled{Program: c.prg, Err: c.err}
	}
	match, errs := admcel.MatchConditions(ctx, conds, admcel.NewActivation(req, nil, nil, nil), admcel.NewBudget(admcel.RuntimeBudget))
	if match || len(errs) == 0 {
		return match, nil
	}
	if h.failurePolicy == admissionregistrationv1.Ignore {
		return false, nil
	}
	gr := schema.GroupResource{Group: req.Attrs.Group, Resource: req.Attrs.Resource}
	return false, apierrors.NewForbidden(gr, req.Attrs.Name, utilerrors.NewAggregate(errs))
}

type mutatingPlugin struct{ w *Webhooks }

// Admit calls the matching mutating webhooks one after the other, each
// seeing the object as the previous ones left it, then once more those with
// reinvocationPolicy IfNeeded whose output a later webhook changed.
func (p mutatingPlugin) Admit(ctx context.Context, a *admission.Attributes) error {
	w := p.w
	snap := w.snapshot(a.Cluster)
	if snap == nil || len(snap.mutating) == 0 || admcel.Exempt(a) {
		return nil
	}
	rv := &review{req: admcel.NewRequest(ctx, a, w.opts.Typer)}
	// Reinvocable webhooks called since the object last changed, and those
	// a later change made due for another call.
	invoked := map[string]bool{}
	reinvoke := map[string]bool{}
	for round := 0; round < 2; round++ {
		if round == 1 && len(reinvoke) == 0 {
			break
		}
		for _, h := range snap.mutating {
			if round == 1 && !reinvoke[h.uid] {
				continue
			}
			ok, err := w.shouldCall(ctx, h, rv.req)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			changed, err := w.mutate(ctx, h, rv)
			if changed {
				for uid := range invoked {
					reinvoke[uid] = true
				}
				clear(invoked)
			}
			if h.reinvokeIfNeed {
				invoked[h.uid] = true
			}
			if err = w.applyFailurePolicy(ctx, h, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyFailurePolicy decides what err, from calling h, does to the request.
func (w *Webhooks) applyFailurePolicy(ctx context.Context, h *hook, err error) error {
	var ce *callError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	if h.failurePolicy != admissionregistrationv1.Ignore {
		return apierrors.NewInternalError(ce)
	}
	if ctx.Err() != nil {
		// The request itself ran out of time, not just this webhook.
		return apierrors.NewTimeoutError("request did not complete within requested timeout", 0)
	}
	return nil
}

// mutate calls h and applies its patch to the request's object.
func (w *Webhooks) mutate(ctx context.Context, h *hook, rv *review) (bool, error) {
	resp, err := w.call(ctx, h, rv, true)
	if err != nil || len(resp.Patch) == 0 {
		return false, err
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		return false, &callError{webhook: h.name, reason: fmt.Errorf("received undecodable patch in webhook response: %w", err),
			status: apierrors.NewServiceUnavailable("error decoding patch in webhook response")}
	}
	if len(patch) == 0 {
		return false, nil
	}
	a := rv.req.Attrs
	if a.Object == nil {
		return false, apierrors.NewInternalError(fmt.Errorf("admission webhook %q attempted to modify the object, which is not supported for this operation", h.name))
	}
	if *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		return false, &callError{webhook: h.name, reason: fmt.Errorf("unsupported patch type %q", *resp.PatchType),
			status: denied(h.name, resp.Result)}
	}
	patched, err := patch.Apply(rv.object)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	changed, err := replaceObject(a.Object, patched)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	if changed {
		rv.objectChanged()
	}
	return changed, nil
}

// replaceObject decodes data into a new object of obj's type and, if it
// differs, copies it over obj, so that every holder of the caller's pointer
// sees the patched object.
func replaceObject(obj runtime.Object, data []byte) (bool, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		next := &unstructured.Unstructured{}
		if err := next.UnmarshalJSON(data); err != nil {
			return false, err
		}
		if apiequality.Semantic.DeepEqual(u.Object, next.Object) {
			return false, nil
		}
		u.Object = next.Object
		return true, nil
	}
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false, fmt.Errorf("cannot patch an object of type %T", obj)
	}
	next := reflect.New(v.Type().Elem())
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, next.Interface()); err != nil {
		return false, err
	}
	// Keep the kind as the object had it (possibly unset): the patch was
	// applied to an encoding with apiVersion and kind filled in.
	next.Interface().(runtime.Object).GetObjectKind().SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	if apiequality.Semantic.DeepEqual(obj, next.Interface()) {
		return false, nil
	}
	v.Elem().Set(next.Elem())
	return true, nil
}

type validatingPlugin struct{ w *Webhooks }

// Admit calls the matching validating webhooks in parallel, as
// kube-apiserver does, and returns the first rejection in webhook order.
func (p validatingPlugin) Admit(ctx context.Context, a *admission.Attributes) error {
	w := p.w
	snap := w.snapshot(a.Cluster)
	if snap == nil || len(snap.validating) == 0 || admcel.Exempt(a) {
		return nil
	}
	rv := &review{req: admcel.NewRequest(ctx, a, w.opts.Typer)}
	var hooks []*hook
	for _, h := range snap.validating {
		ok, err := w.shouldCall(ctx, h, rv.req)
		if err != nil {
			return err
		}
		if ok {
			hooks = append(hooks, h)
		}
	}
	if len(hooks) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return apierrors.NewTimeoutError("request did not complete within requested timeout", 0)
	}
	// Encode once, before the goroutines share the review.
	if err := rv.encode(); err != nil {
		return apierrors.NewInternalError(err)
	}
	errs := make([]error, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil && h.failurePolicy != admissionregistrationv1.Ignore {
					errs[i] = apierrors.NewInternalError(fmt.Errorf("ValidatingAdmissionWebhook/%v has panicked: %v", h.name, r))
				}
			}()
			_, err := w.call(ctx, h, rv, false)
			errs[i] = w.applyFailurePolicy(ctx, h, err)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
