package replicaset

import (
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pgkube/pgkube/controllers/framework"
)

// podHandler turns pod events into controller keys and settles
// expectations.
type podHandler struct{ rc *Controller }

func (h podHandler) OnAdd(obj any, _ bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if p.DeletionTimestamp != nil {
		// Seen for the first time already being deleted (e.g. after a
		// restart): a deletion as far as expectations go.
		h.OnDelete(p)
		return
	}
	cluster := framework.ClusterOf(p)
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		if rs := h.rc.resolve(cluster, p.Namespace, ref); rs != nil {
			h.rc.exp.CreationObserved(framework.KeyOf(rs).String())
			h.rc.enqueue(rs)
		}
		return
	}
	// An orphan: every controller that could adopt it looks.
	for _, rs := range h.rc.selecting(p) {
		h.rc.enqueue(rs)
	}
}

func (h podHandler) OnUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	if old.ResourceVersion != "" && old.ResourceVersion == cur.ResourceVersion {
		return // a resync: nothing changed
	}
	labelsChanged := !reflect.DeepEqual(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil {
		// Being deleted (graceful deletion): count it gone now so the
		// replacement is not held back by the grace period.
		h.OnDelete(cur)
		if labelsChanged {
			h.OnDelete(old)
		}
		return
	}
	cluster := framework.ClusterOf(cur)
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	refChanged := !reflect.DeepEqual(oldRef, curRef)
	if refChanged && oldRef != nil {
		if rs := h.rc.resolve(cluster, old.Namespace, oldRef); rs != nil {
			h.rc.enqueue(rs)
		}
	}
	if curRef != nil {
		rs := h.rc.resolve(cluster, cur.Namespace, curRef)
		if rs == nil {
			return
		}
		h.rc.enqueue(rs)
		if !IsPodReady(old) && IsPodReady(cur) && rs.Spec.MinReadySeconds > 0 {
			h.rc.queue.EnqueueAfter(framework.KeyOf(rs), time.Duration(rs.Spec.MinReadySeconds)*time.Second)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range h.rc.selecting(cur) {
			h.rc.enqueue(rs)
		}
	}
}

func (h podHandler) OnDelete(obj any) {
	m := framework.ObjectFromEvent(obj)
	p, ok := m.(*corev1.Pod)
	if !ok {
		return
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil {
		return
	}
	rs := h.rc.resolve(framework.ClusterOf(p), p.Namespace, ref)
	if rs == nil {
		return
	}
	key := framework.KeyOf(rs)
	h.rc.exp.DeletionObserved(key.String(), podKey(p))
	h.rc.queue.Enqueue(key)
}
