package registry

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// preparePod sets what the API server owns on a new pod: it starts Pending
// with its QoS class, as upstream's pod strategy does.
func preparePod(obj, old runtime.Object, subresource string) {
	p := obj.(*corev1.Pod)
	if old == nil {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
	}
	if subresource == "status" {
		// Upstream keeps pods/status writers (kubelets) off the owners.
		p.OwnerReferences = old.(*corev1.Pod).OwnerReferences
	}
}

// prepareDeployment: a Deployment's status writer may not change its labels.
func prepareDeployment(obj, old runtime.Object, subresource string) {
	if subresource == "status" {
		obj.(*appsv1.Deployment).Labels = old.(*appsv1.Deployment).Labels
	}
}

// qosClass follows the rules the seed notes describe: no requests or limits
// anywhere is BestEffort; limits equal to requests for cpu and memory in every
// container is Guaranteed; anything else Burstable.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	set, guaranteed := false, true
	for _, c := range containers {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if !hasReq && hasLim {
				req, hasReq = lim, true // requests default to limits
			}
			if hasReq || hasLim {
				set = true
			}
			if !hasLim || !hasReq || req.Cmp(lim) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case !set:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

// podGracefulDelete: a pod that runs on a node is only marked, so its agent
// can stop the containers within the grace period and then delete it.
// Unscheduled and finished pods go at once, as upstream.
func podGracefulDelete(obj runtime.Object, requested *int64) (bool, int64) {
	p := obj.(*corev1.Pod)
	seconds := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		seconds = *p.Spec.TerminationGracePeriodSeconds
	}
	if requested != nil {
		seconds = *requested
	}
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false, 0
	}
	if seconds == 0 {
		return false, 0
	}
	return true, seconds
}

// prepareNamespace: new namespaces are Active and carry the "kubernetes"
// finalizer that the namespace controller removes once they are empty.
func prepareNamespace(obj, old runtime.Object, subresource string) {
	ns := obj.(*corev1.Namespace)
	if old == nil {
		ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		if !hasFinalizer(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
			ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
		}
		return
	}
	// Spec finalizers change only through /finalize.
	if subresource != "finalize" {
		ns.Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
	}
}

func namespaceTerminating(obj runtime.Object) {
	obj.(*corev1.Namespace).Status.Phase = corev1.NamespaceTerminating
}

func namespaceFinalizers(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
}

func hasFinalizer(list []corev1.FinalizerName, f corev1.FinalizerName) bool {
	for _, x := range list {
		if x == f {
			return true
		}
	}
	return false
}

// prepareSecret folds the write-only stringData into data, as upstream's
// conversion does: stringData is never stored or returned.
func prepareSecret(obj, old runtime.Object, subresource string) {
	sec := obj.(*corev1.Secret)
	if sec.Type == "" {
		sec.Type = corev1.SecretTypeOpaque
	}
	if len(sec.StringData) == 0 {
		sec.StringData = nil
		return
	}
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	for k, v := range sec.StringData {
		sec.Data[k] = []byte(v)
	}
	sec.StringData = nil
}

func preparePV(obj, old runtime.Object, subresource string) {
	if old == nil {
		obj.(*corev1.PersistentVolume).Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
	}
}

func preparePVC(obj, old runtime.Object, subresource string) {
	if old == nil {
		obj.(*corev1.PersistentVolumeClaim).Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	}
}

func replicasFields(obj runtime.Object) map[string]string {
	switch o := obj.(type) {
	case *corev1.ReplicationController:
		return map[string]string{"status.replicas": strconv.Itoa(int(o.Status.Replicas))}
	case *appsv1.ReplicaSet:
		return map[string]string{"status.replicas": strconv.Itoa(int(o.Status.Replicas))}
	}
	return nil
}

func jobFields(obj runtime.Object) map[string]string {
	return map[string]string{"status.successful": strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))}
}

// validateImmutableData: ConfigMaps and Secrets marked immutable keep their
// data and the mark itself.
func validateImmutableData(obj, old runtime.Object) field.ErrorList {
	if old == nil {
		return nil
	}
	var wasImmutable, isImmutable *bool
	var oldData, newData []any
	switch o := old.(type) {
	case *corev1.ConfigMap:
		n := obj.(*corev1.ConfigMap)
		wasImmutable, isImmutable = o.Immutable, n.Immutable
		oldData, newData = []any{o.Data, o.BinaryData}, []any{n.Data, n.BinaryData}
	case *corev1.Secret:
		n := obj.(*corev1.Secret)
		wasImmutable, isImmutable = o.Immutable, n.Immutable
		oldData, newData = []any{o.Data, o.StringData}, []any{n.Data, n.StringData}
	default:
		return nil
	}
	if wasImmutable == nil || !*wasImmutable {
		return nil
	}
	var errs field.ErrorList
	if isImmutable == nil || !*isImmutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	a, _ := json.Marshal(oldData)
	b, _ := json.Marshal(newData)
	if !bytes.Equal(a, b) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}

// eventToCore converts an events.k8s.io/v1 Event to the stored core/v1 form.
func eventToCore(obj runtime.Object) (runtime.Object, error) {
	e := obj.(*eventsv1.Event)
	c := &corev1.Event{
		TypeMeta:            corev1Meta("Event"),
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              corev1.EventSource{Component: e.DeprecatedSource.Component, Host: e.DeprecatedSource.Host},
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Related:             e.Related,
		Action:              e.Action,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		c.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return c, nil
}

// eventFromCore is the inverse of eventToCore.
func eventFromCore(obj runtime.Object) (runtime.Object, error) {
	c := obj.(*corev1.Event)
	e := &eventsv1.Event{
		ObjectMeta:               c.ObjectMeta,
		EventTime:                c.EventTime,
		ReportingController:      c.ReportingController,
		ReportingInstance:        c.ReportingInstance,
		Action:                   c.Action,
		Reason:                   c.Reason,
		Regarding:                c.InvolvedObject,
		Related:                  c.Related,
		Note:                     c.Message,
		Type:                     c.Type,
		DeprecatedSource:         c.Source,
		DeprecatedFirstTimestamp: c.FirstTimestamp,
		DeprecatedLastTimestamp:  c.LastTimestamp,
		DeprecatedCount:          c.Count,
	}
	e.APIVersion, e.Kind = "events.k8s.io/v1", "Event"
	if c.Series != nil {
		e.Series = &eventsv1.EventSeries{Count: c.Series.Count, LastObservedTime: c.Series.LastObservedTime}
	}
	return e, nil
}

func corev1Meta(kind string) metav1.TypeMeta { return metav1.TypeMeta{APIVersion: "v1", Kind: kind} }

// CRDCleanupFinalizer holds a deleted CRD until its custom resources are
// gone, as upstream.
const CRDCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

// crdHeld: a CRD's first deletion only marks it, so that its custom
// resources can be removed first.
func crdHeld(obj runtime.Object) bool {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	return ok && crd.DeletionTimestamp == nil
}

// crdDeleting adds the cleanup finalizer and the Terminating condition.
func crdDeleting(obj runtime.Object) {
	crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
	if !ok {
		return
	}
	if !slices.Contains(crd.Finalizers, CRDCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, CRDCleanupFinalizer)
	}
	SetCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Terminating,
		Status: apiextensionsv1.ConditionTrue, Reason: "InstanceDeletionPending",
		Message: "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"})
}

// SetCRDCondition sets a condition, keeping its transition time when the
// status does not change.
func SetCRDCondition(crd *apiextensionsv1.CustomResourceDefinition, c apiextensionsv1.CustomResourceDefinitionCondition) {
	for i := range crd.Status.Conditions {
		old := &crd.Status.Conditions[i]
		if old.Type == c.Type {
			if old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			} else {
				c.LastTransitionTime = metav1.Now()
			}
			*old = c
			return
		}
	}
	c.LastTransitionTime = metav1.Now()
	crd.Status.Conditions = append(crd.Status.Conditions, c)
}

// prepareJob gives a new Job without a manual selector the selector and
// pod labels upstream generates: its pods carry the Job's name and uid
// (also under the legacy keys), and it selects by uid, so that only its own
// pods ever match.
func prepareJob(obj, old runtime.Object, subresource string) {
	j := obj.(*batchv1.Job)
	if old != nil || (j.Spec.ManualSelector != nil && *j.Spec.ManualSelector) {
		return
	}
	if j.Spec.Template.Labels == nil {
		j.Spec.Template.Labels = map[string]string{}
	}
	set := func(key, value string) {
		if _, ok := j.Spec.Template.Labels[key]; !ok {
			j.Spec.Template.Labels[key] = value // one the user set is checked by validation
		}
	}
	set("job-name", j.Name) // the legacy keys, without a prefix
	set(batchv1.JobNameLabel, j.Name)
	set("controller-uid", string(j.UID))
	set(batchv1.ControllerUidLabel, string(j.UID))
	if j.Spec.Selector == nil {
		j.Spec.Selector = &metav1.LabelSelector{}
	}
	if j.Spec.Selector.MatchLabels == nil {
		j.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !ok {
		j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(j.UID)
	}
}
