package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pgkube/pgkube/registry"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// scalePath turns a CRD's JSON path (".spec.replicas") into field names,
// or returns def when the resource does not name one.
func scalePath(p string, def ...string) []string {
	if p == "" {
		return def
	}
	return strings.Split(strings.TrimPrefix(p, "."), ".")
}

// scaleOf reads an object's scale generically from its JSON form: the
// desired and current replica counts and the selector.
func scaleOf(obj runtime.Object, info *registry.ScaleInfo) (*autoscalingv1.Scale, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	m, _ := meta.Accessor(obj)
	sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{
		Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
		ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
	}}
	setGVK(sc, scaleGVK)
	spec, _, _ := unstructured.NestedInt64(u, scalePath(info.SpecReplicasPath, "spec", "replicas")...)
	status, _, _ := unstructured.NestedInt64(u, scalePath(info.StatusReplicasPath, "status", "replicas")...)
	sc.Spec.Replicas, sc.Status.Replicas = int32(spec), int32(status)
	switch {
	case info.LabelSelectorPath != "":
		// A custom resource keeps its selector as a string, already in
		// selector syntax.
		sc.Status.Selector, _, _ = unstructured.NestedString(u, scalePath(info.LabelSelectorPath)...)
	case info.SelectorIsMap:
		sel, _, _ := unstructured.NestedStringMap(u, "spec", "selector")
		sc.Status.Selector = labels.SelectorFromSet(sel).String()
	default:
		if raw, ok, _ := unstructured.NestedMap(u, "spec", "selector"); ok {
			var ls metav1.LabelSelector
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err == nil {
				if sel, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
					sc.Status.Selector = sel.String()
				}
			}
		}
	}
	return sc, nil
}

// setReplicas writes the desired replica count into an object through its
// JSON form.
func setReplicas(obj runtime.Object, info *registry.ScaleInfo, replicas int32) (runtime.Object, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if err := unstructured.SetNestedField(u, int64(replicas), scalePath(info.SpecReplicasPath, "spec", "replicas")...); err != nil {
		return nil, err
	}
	if _, ok := obj.(*unstructured.Unstructured); ok {
		return &unstructured.Unstructured{Object: u}, nil
	}
	out := obj.DeepCopyObject()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, out); err != nil {
		return nil, err
	}
	return out, nil
}

// serveScale serves /scale: get, update and patch of an autoscaling/v1 Scale
// that reads and writes the parent's replica count.
func (s *Server) serveScale(c *call) error {
	sel := c.res.Scale
	switch c.ri.Verb {
	case "get":
		obj, _, err := s.load(c, c.ri.Namespace, c.ri.Name)
		if err != nil {
			return err
		}
		sc, err := scaleOf(obj, sel)
		if err != nil {
			return err
		}
		return s.respond(c, http.StatusOK, sc)
	case "update", "patch":
	default:
		return methodNotAllowed(c)
	}
	if err := checkDryRun(c.r); err != nil {
		return err
	}
	mode, err := fieldValidation(c.r)
	if err != nil {
		return err
	}
	body, err := readBody(c.r)
	if err != nil {
		return err
	}
	obj, _, err := s.updateObject(c, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		curScale, err := scaleOf(cur, sel)
		if err != nil {
			return nil, "", err
		}
		var want *autoscalingv1.Scale
		var clientRV string
		if c.ri.Verb == "update" {
			d, err := s.codecs.decode(body, contentType(c.r), scaleGVK)
			if err != nil {
				return nil, "", err
			}
			if err := c.fieldProblems(mode, d.warnings); err != nil {
				return nil, "", err
			}
			want = d.obj.(*autoscalingv1.Scale)
			clientRV = want.ResourceVersion
		} else {
			sub := &call{w: c.w, r: c.r, ctx: c.ctx, ri: c.ri, res: c.res, out: c.out, cluster: c.cluster}
			scaleRes := *c.res
			scaleRes.Group, scaleRes.Version, scaleRes.Kind = "autoscaling", "v1", "Scale"
			sub.res = &scaleRes
			patched, rv, err := s.applyPatch(sub, types.PatchType(contentType(c.r)), body, curScale, mode)
			if err != nil {
				return nil, "", err
			}
			want, clientRV = patched.(*autoscalingv1.Scale), rv
		}
		if want.Spec.Replicas < 0 {
			return nil, "", apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, c.ri.Name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		next, err := setReplicas(cur, sel, want.Spec.Replicas)
		if err != nil {
			return nil, "", err
		}
		return next, clientRV, nil
	})
	if err != nil {
		return err
	}
	sc, err := scaleOf(obj, sel)
	if err != nil {
		return err
	}
	return s.respond(c, http.StatusOK, sc)
}

// bindPod assigns a pod to a node: the scheduler's write. A pod that is
// already bound cannot be bound again.
func (s *Server) bindPod(c *call) error {
	obj, err := s.decodeBody(c, corev1.SchemeGroupVersion.WithKind("Binding"))
	if err != nil {
		return err
	}
	b := obj.(*corev1.Binding)
	if b.Name != "" && b.Name != c.ri.Name {
		return badRequest("name in URL does not match name in Binding object")
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, b.Name, field.ErrorList{
			field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"})})
	}
	if b.Target.Name == "" {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, b.Name, field.ErrorList{
			field.Required(field.NewPath("target", "name"), "")})
	}
	// Conflicts name the subresource, as upstream's.
	bindingGR := schemaGR("", "pods/binding")
	c.untracked = true
	_, _, err = s.updateObject(c, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		p := cur.(*corev1.Pod)
		if p.DeletionTimestamp != nil {
			return nil, "", apierrors.NewConflict(bindingGR, p.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", p.Name))
		}
		if p.Spec.NodeName != "" {
			return nil, "", apierrors.NewConflict(bindingGR, p.Name, fmt.Errorf("pod %s is already assigned to node %q", p.Name, p.Spec.NodeName))
		}
		if len(p.Spec.SchedulingGates) > 0 {
			return nil, "", apierrors.NewConflict(bindingGR, p.Name, fmt.Errorf("pod %s has non-empty .spec.schedulingGates", p.Name))
		}
		if b.UID != "" && b.UID != p.UID {
			return nil, "", apierrors.NewConflict(bindingGR, p.Name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, p.UID))
		}
		p.Spec.NodeName = b.Target.Name
		p.Status.NominatedNodeName = ""
		scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
		replaced := false
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodScheduled {
				p.Status.Conditions[i], replaced = scheduled, true
			}
		}
		if !replaced {
			p.Status.Conditions = append(p.Status.Conditions, scheduled)
		}
		for k, v := range b.Annotations {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[k] = v
		}
		return p, "", nil
	})
	if err != nil {
		return err
	}
	st := metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}
	st.Kind, st.APIVersion = "Status", "v1"
	writeJSON(c.w, http.StatusCreated, &st)
	return nil
}

// finalizeNamespace replaces a namespace's spec.finalizers; when the last
// one goes from a deleted namespace, the namespace is removed.
func (s *Server) finalizeNamespace(c *call) error {
	body, err := s.decodeBody(c, corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err != nil {
		return err
	}
	want := body.(*corev1.Namespace)
	obj, stored, err := s.updateObject(c, "", c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		ns := cur.(*corev1.Namespace)
		ns.Spec.Finalizers = want.Spec.Finalizers
		return ns, want.ResourceVersion, nil
	})
	if err != nil {
		return err
	}
	return s.respondWritten(c, http.StatusOK, obj, stored)
}
