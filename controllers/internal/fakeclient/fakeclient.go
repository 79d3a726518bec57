// Package fakeclient is client-go's fake clientset made closer to a real
// API server for controller tests: generated names, uids, creation
// timestamps, resourceVersions that change on every write and are checked
// on updates (409 Conflict), metadata.generation bumped on spec changes,
// and the status subresource (a status write changes only the status, a
// main write everything but the status).
package fakeclient

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// New is a fake clientset with the reactors described above.
func New() *fake.Clientset {
	cs := fake.NewClientset()
	s := &server{cs: cs}
	cs.PrependReactor("create", "*", s.create)
	cs.PrependReactor("update", "*", s.update)
	cs.PrependReactor("patch", "*", s.patch)
	return cs
}

type server struct {
	cs *fake.Clientset
	mu sync.Mutex
	n  int64
}

func (s *server) next() int64 {
	s.n++
	return s.n
}

func (s *server) create(a k8stesting.Action) (bool, runtime.Object, error) {
	obj := a.(k8stesting.CreateAction).GetObject()
	m, err := meta.Accessor(obj)
	if err != nil || a.GetSubresource() != "" {
		return false, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.next()
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(fmt.Sprintf("%s%05d", m.GetGenerateName(), n))
	}
	m.SetUID(types.UID(fmt.Sprintf("uid-%d", n)))
	// Distinct, increasing creation times, as ordering depends on them.
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Add(time.Duration(n) * time.Microsecond)))
	m.SetGeneration(1)
	m.SetResourceVersion(strconv.FormatInt(n, 10))
	if err := s.cs.Tracker().Create(a.GetResource(), obj, m.GetNamespace()); err != nil {
		return true, nil, err
	}
	return true, obj.DeepCopyObject(), nil
}

func (s *server) update(a k8stesting.Action) (bool, runtime.Object, error) {
	obj := a.(k8stesting.UpdateAction).GetObject().DeepCopyObject()
	m, err := meta.Accessor(obj)
	if err != nil {
		return false, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.cs.Tracker().Get(a.GetResource(), m.GetNamespace(), m.GetName())
	if err != nil {
		return true, nil, err
	}
	return s.write(a, cur, obj)
}

// write stores obj as the new version of cur.
func (s *server) write(a k8stesting.Action, cur, obj runtime.Object) (bool, runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	cm, _ := meta.Accessor(cur)
	gr := a.GetResource().GroupResource()
	if rv := m.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
		return true, nil, apierrors.NewConflict(gr, m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if m.GetUID() != "" && m.GetUID() != cm.GetUID() {
		return true, nil, apierrors.NewConflict(gr, m.GetName(), fmt.Errorf("Precondition failed: UID"))
	}
	m.SetUID(cm.GetUID())
	m.SetCreationTimestamp(cm.GetCreationTimestamp())
	m.SetGeneration(cm.GetGeneration())
	if a.GetSubresource() == "status" {
		// Everything but the status stays.
		st := field(obj, "Status")
		obj = cur.DeepCopyObject()
		if st.IsValid() {
			field(obj, "Status").Set(st)
		}
		m, _ = meta.Accessor(obj)
	} else if a.GetSubresource() == "" {
		if st := field(cur, "Status"); st.IsValid() {
			field(obj, "Status").Set(st)
		}
		if !reflect.DeepEqual(field(cur, "Spec").Interface(), field(obj, "Spec").Interface()) {
			m.SetGeneration(cm.GetGeneration() + 1)
		}
	}
	m.SetResourceVersion(strconv.FormatInt(s.next(), 10))
	if err := s.cs.Tracker().Update(a.GetResource(), obj, m.GetNamespace()); err != nil {
		return true, nil, err
	}
	return true, obj.DeepCopyObject(), nil
}

func field(obj runtime.Object, name string) reflect.Value {
	v := reflect.ValueOf(obj).Elem().FieldByName(name)
	if !v.IsValid() {
		return reflect.Value{}
	}
	return v
}

func (s *server) patch(a k8stesting.Action) (bool, runtime.Object, error) {
	pa := a.(k8stesting.PatchAction)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.cs.Tracker().Get(a.GetResource(), a.GetNamespace(), pa.GetName())
	if err != nil {
		return true, nil, err
	}
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return true, nil, err
	}
	var out []byte
	switch pa.GetPatchType() {
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(curJSON, pa.GetPatch())
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(curJSON, pa.GetPatch(), cur)
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(pa.GetPatch()); err == nil {
			out, err = p.Apply(curJSON)
		}
	default:
		return false, nil, nil
	}
	if err != nil {
		return true, nil, apierrors.NewBadRequest(err.Error())
	}
	obj := cur.DeepCopyObject()
	// Unmarshal into a zeroed object of the same type.
	v := reflect.ValueOf(obj).Elem()
	v.Set(reflect.Zero(v.Type()))
	if err := json.Unmarshal(out, obj); err != nil {
		return true, nil, apierrors.NewBadRequest(err.Error())
	}
	return s.write(a, cur, obj) // a resourceVersion in the patch is a precondition
}
