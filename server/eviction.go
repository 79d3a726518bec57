package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
)

// maxDisruptedPods bounds a budget's status.disruptedPods, as upstream.
const maxDisruptedPods = 2000

var evictionGVK = policyv1.SchemeGroupVersion.WithKind("Eviction")

const evictionRefused = "Cannot evict pod as it would violate the pod's disruption budget."

// evictPod serves pods/NAME/eviction: the pod is deleted (with the
// Eviction's deleteOptions) unless that would take the one
// PodDisruptionBudget selecting it below its minimum, as upstream's
// eviction subresource. A budget that allows it is decremented and records
// the pod in status.disruptedPods before the delete.
func (s *Server) evictPod(c *call) error {
	obj, err := s.decodeEviction(c)
	if err != nil {
		return err
	}
	ev, ok := obj.(*policyv1.Eviction)
	if !ok {
		return badRequest("not a Eviction object: %T", obj)
	}
	if ev.Name != "" && ev.Name != c.ri.Name {
		return badRequest("name in URL does not match name in Eviction object")
	}
	opts := &metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = ev.DeleteOptions.DeepCopy()
	}
	opts.DryRun = append(opts.DryRun, c.r.URL.Query()["dryRun"]...)
	for _, v := range opts.DryRun {
		if v != "All" {
			return badRequest("Invalid dry run value: %q. Valid values are: All", v)
		}
	}
	dryRun := len(opts.DryRun) > 0
	rvGiven := opts.Preconditions != nil && opts.Preconditions.ResourceVersion != nil

	for attempt := 0; ; attempt++ {
		cur, _, err := s.load(c, c.ri.Namespace, c.ri.Name)
		if err != nil {
			return err
		}
		pod := cur.(*corev1.Pod)
		spent, err := s.evictOnce(c, pod, opts, dryRun)
		// Conflicts before a disruption was spent are retried from a
		// fresh read, as upstream (never twice from one budget).
		if apierrors.IsConflict(err) && !spent && !rvGiven && attempt < 5 {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	st := metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
	st.Kind, st.APIVersion = "Status", "v1"
	writeJSON(c.w, http.StatusCreated, &st)
	return nil
}

// decodeEviction decodes a policy/v1 Eviction, or a policy/v1beta1 one in
// JSON (the same fields), which upstream also accepts.
func (s *Server) decodeEviction(c *call) (runtime.Object, error) {
	body, err := readBody(c.r)
	if err != nil {
		return nil, err
	}
	c.r.Body = io.NopCloser(bytes.NewReader(body))
	c.r.ContentLength = int64(len(body))
	if contentType(c.r) == mediaJSON {
		var tm metav1.TypeMeta
		if json.Unmarshal(body, &tm) == nil && tm.APIVersion == "policy/v1beta1" {
			ev := &policyv1.Eviction{}
			if err := json.Unmarshal(body, ev); err != nil {
				return nil, badRequest("Eviction in version \"v1beta1\" cannot be handled as a Eviction: %v", err)
			}
			ev.APIVersion = policyv1.SchemeGroupVersion.String()
			return ev, nil
		}
	}
	return s.decodeBody(c, evictionGVK)
}

// evictOnce is one attempt at evicting pod as last read; spent reports
// that a budget was decremented for it.
func (s *Server) evictOnce(c *call, pod *corev1.Pod, opts *metav1.DeleteOptions, dryRun bool) (spent bool, err error) {
	withRV := func() *metav1.DeleteOptions {
		if opts.Preconditions != nil && opts.Preconditions.ResourceVersion != nil {
			return opts
		}
		o := opts.DeepCopy()
		if o.Preconditions == nil {
			o.Preconditions = &metav1.Preconditions{}
		}
		rv := pod.ResourceVersion
		o.Preconditions.ResourceVersion = &rv
		return o
	}
	// Terminal, pending and deleting pods disrupt nothing more: no budget.
	switch {
	case pod.DeletionTimestamp != nil, pod.Status.Phase == corev1.PodSucceeded, pod.Status.Phase == corev1.PodFailed:
		return false, s.evictDelete(c, opts)
	case pod.Status.Phase == corev1.PodPending:
		return false, s.evictDelete(c, withRV())
	}
	pdbs, pdbRes, err := s.budgetsOf(c, pod)
	if err != nil {
		return false, err
	}
	if len(pdbs) > 1 {
		return false, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError,
			Reason:  metav1.StatusReasonInternalError,
			Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}
	}
	if len(pdbs) == 0 {
		return false, s.evictDelete(c, opts)
	}
	pdb := pdbs[0]
	if !podReady(pod) {
		p := pdb.Spec.UnhealthyPodEvictionPolicy
		if (p != nil && *p == policyv1.AlwaysAllow) ||
			(pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0) {
			err := s.evictDelete(c, withRV())
			if apierrors.IsConflict(err) && (opts.Preconditions == nil || opts.Preconditions.ResourceVersion == nil) {
				return false, tooManyRequests(pdb.Name, fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdb.Name))
			}
			return false, err
		}
	}
	if err := s.takeDisruption(c, pdbRes, pdb.Name, pod.Name, dryRun); err != nil {
		return false, err
	}
	return true, s.evictDelete(c, opts)
}

func tooManyRequests(pdb, msg string) error {
	err := apierrors.NewTooManyRequests(evictionRefused, 10)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes,
		metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: msg})
	return err
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// budgetsOf lists the PodDisruptionBudgets in the pod's namespace whose
// selector matches it.
func (s *Server) budgetsOf(c *call, pod *corev1.Pod) ([]*policyv1.PodDisruptionBudget, *registry.Resource, error) {
	res, ok := s.view(c.r).Lookup(policyv1.GroupName, "v1", "poddisruptionbudgets")
	if !ok {
		return nil, nil, nil
	}
	page, err := s.cfg.Store.List(c.ctx, c.cluster, storage.ListOptions{Resource: res.StorageKey(), Namespace: pod.Namespace})
	if err != nil {
		return nil, nil, err
	}
	var out []*policyv1.PodDisruptionBudget
	for _, item := range page.Items {
		obj, err := s.fromStorage(res, item.Data)
		if err != nil {
			return nil, nil, err
		}
		pdb, ok := obj.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, res, nil
}

// takeDisruption checks that the budget allows one more disruption and
// records it: disruptionsAllowed decremented, the pod in disruptedPods.
// The write is conditioned on the version read (updateObject retries).
func (s *Server) takeDisruption(c *call, res *registry.Resource, name, podName string, dryRun bool) error {
	pc := *c
	pc.res = res
	pc.ri = requestInfo{Group: res.Group, Version: res.Version, Resource: res.Resource, Namespace: c.ri.Namespace,
		Name: name, Subresource: "status", Verb: "update"}
	pc.warnings = nil
	var refusal error
	_, _, err := s.updateObject(&pc, c.ri.Namespace, name, func(cur runtime.Object) (runtime.Object, string, error) {
		pdb := cur.(*policyv1.PodDisruptionBudget)
		if err := checkBudget(pdb); err != nil {
			refusal = err
			return nil, "", err
		}
		pdb.Status.DisruptionsAllowed--
		if pdb.Status.DisruptionsAllowed == 0 {
			meta.SetStatusCondition(&pdb.Status.Conditions, metav1.Condition{Type: policyv1.DisruptionAllowedCondition,
				Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason, ObservedGeneration: pdb.Status.ObservedGeneration})
		}
		if dryRun {
			return nil, "", errDryRunDone
		}
		if pdb.Status.DisruptedPods == nil {
			pdb.Status.DisruptedPods = map[string]metav1.Time{}
		}
		pdb.Status.DisruptedPods[podName] = metav1.Time{Time: time.Now()}
		return pdb, "", nil
	})
	if errors.Is(err, errDryRunDone) {
		return nil
	}
	if refusal != nil {
		return refusal
	}
	return err
}

var errDryRunDone = errors.New("dry run")

// checkBudget is upstream's check before a disruption.
func checkBudget(pdb *policyv1.PodDisruptionBudget) error {
	if pdb.Status.ObservedGeneration < pdb.Generation {
		return tooManyRequests(pdb.Name, fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdb.Name))
	}
	forbidden := func(why, msg string) error {
		err := apierrors.NewForbidden(schemaGR(policyv1.GroupName, "poddisruptionbudget"), pdb.Name, errors.New(why))
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes,
			metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf("The disruption budget %s does not allow evicting pods currently: %s", pdb.Name, msg)})
		return err
	}
	if pdb.Status.DisruptionsAllowed < 0 {
		return forbidden("pdb disruptions allowed is negative", "pdb disruptions allowed is negative")
	}
	if len(pdb.Status.DisruptedPods) > maxDisruptedPods {
		return forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller",
			"too many pending evictions not confirmed by PDB controller")
	}
	if pdb.Status.DisruptionsAllowed == 0 {
		cond := meta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition)
		var msg string
		switch {
		case cond != nil && cond.Status == metav1.ConditionFalse && cond.Message != "" && cond.Reason == policyv1.SyncFailedReason:
			msg = fmt.Sprintf("The disruption budget %s does not allow evicting pods currently because it failed sync: %s", pdb.Name, cond.Message)
		case pdb.Status.CurrentHealthy <= pdb.Status.DesiredHealthy:
			msg = fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)
		case cond != nil && cond.Status == metav1.ConditionFalse && cond.Message != "":
			msg = fmt.Sprintf("The disruption budget %s does not allow evicting pods currently (%s): %s", pdb.Name, cond.Reason, cond.Message)
		default:
			msg = fmt.Sprintf("The disruption budget %s does not allow evicting pods currently", pdb.Name)
		}
		err := apierrors.NewTooManyRequests(evictionRefused, 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes,
			metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: msg})
		return err
	}
	return nil
}

// evictDelete marks the pod as a disruption target (condition
// DisruptionTarget, reason EvictionByEvictionAPI) and deletes it with opts.
func (s *Server) evictDelete(c *call, opts *metav1.DeleteOptions) error {
	dc := *c
	dc.ri.Subresource, dc.ri.Verb = "", "delete"
	if len(opts.DryRun) == 0 {
		sc := *c
		sc.ri.Subresource, sc.ri.Verb = "status", "update"
		obj, _, err := s.updateObject(&sc, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
			p := cur.(*corev1.Pod)
			if pc := opts.Preconditions; pc != nil {
				if pc.UID != nil && *pc.UID != "" && *pc.UID != p.UID {
					return nil, "", apierrors.NewConflict(schemaGR("", "Pod"), p.Name, fmt.Errorf(
						"the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *pc.UID, p.UID))
				}
				if pc.ResourceVersion != nil && *pc.ResourceVersion != "" && *pc.ResourceVersion != p.ResourceVersion {
					return nil, "", apierrors.NewConflict(schemaGR("", "Pod"), p.Name, fmt.Errorf(
						"the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *pc.ResourceVersion, p.ResourceVersion))
				}
			}
			setPodCondition(p, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting"})
			return p, "", nil
		})
		if err != nil {
			return err
		}
		if opts.Preconditions != nil && opts.Preconditions.ResourceVersion != nil {
			opts = opts.DeepCopy()
			rv := obj.(*corev1.Pod).ResourceVersion
			opts.Preconditions.ResourceVersion = &rv
		}
	} else {
		dc.r = dc.r.Clone(dc.ctx)
		q := dc.r.URL.Query()
		q.Set("dryRun", "All")
		dc.r.URL.RawQuery = q.Encode()
	}
	_, _, err := s.deleteOne(&dc, c.ri.Namespace, c.ri.Name, opts)
	return err
}

// setPodCondition replaces or adds a condition, keeping the transition
// time when the status does not change.
func setPodCondition(p *corev1.Pod, cond corev1.PodCondition) {
	now := metav1.Now()
	for i := range p.Status.Conditions {
		old := &p.Status.Conditions[i]
		if old.Type != cond.Type {
			continue
		}
		if old.Status != cond.Status {
			old.LastTransitionTime = now
		}
		old.Status, old.Reason, old.Message = cond.Status, cond.Reason, cond.Message
		return
	}
	cond.LastTransitionTime = now
	p.Status.Conditions = append(p.Status.Conditions, cond)
}
