package registry

import (
	"reflect"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The helpers below treat every kind alike: a typed object is a struct with
// TypeMeta, ObjectMeta, and other top-level fields of which "Status" is the
// status; an unstructured one is a map with the same keys in JSON form.

// CopyStatus sets dst's status to src's.
func CopyStatus(dst, src runtime.Object) {
	if du, ok := dst.(*unstructured.Unstructured); ok {
		su := src.(*unstructured.Unstructured)
		if st, ok := su.Object["status"]; ok {
			du.Object["status"] = runtime.DeepCopyJSONValue(st)
		} else {
			delete(du.Object, "status")
		}
		return
	}
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	if f := d.FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(s.FieldByName("Status"))
	}
}

// ClearStatus resets the status to its zero value.
func ClearStatus(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		return
	}
	if f := reflect.ValueOf(obj).Elem().FieldByName("Status"); f.IsValid() && f.CanSet() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// CopySpec sets every top-level field of dst except metadata and status to
// src's: a status update changes nothing else.
func CopySpec(dst, src runtime.Object) {
	if du, ok := dst.(*unstructured.Unstructured); ok {
		su := src.(*unstructured.Unstructured)
		for k := range du.Object {
			if !isMetaOrStatus(k) {
				delete(du.Object, k)
			}
		}
		for k, v := range su.Object {
			if !isMetaOrStatus(k) {
				du.Object[k] = runtime.DeepCopyJSONValue(v)
			}
		}
		return
	}
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := 0; i < d.NumField(); i++ {
		if name := d.Type().Field(i).Name; name != "TypeMeta" && name != "ObjectMeta" && name != "Status" {
			d.Field(i).Set(s.Field(i))
		}
	}
}

// SpecChanged reports whether anything but metadata and status differs:
// the change that bumps metadata.generation.
func SpecChanged(a, b runtime.Object) bool {
	if au, ok := a.(*unstructured.Unstructured); ok {
		bu := b.(*unstructured.Unstructured)
		for k, v := range au.Object {
			if !isMetaOrStatus(k) && !equality.Semantic.DeepEqual(v, bu.Object[k]) {
				return true
			}
		}
		for k := range bu.Object {
			if _, ok := au.Object[k]; !ok && !isMetaOrStatus(k) {
				return true
			}
		}
		return false
	}
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := 0; i < av.NumField(); i++ {
		if name := av.Type().Field(i).Name; name != "TypeMeta" && name != "ObjectMeta" && name != "Status" {
			if !equality.Semantic.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
				return true
			}
		}
	}
	return false
}

func isMetaOrStatus(k string) bool {
	return k == "apiVersion" || k == "kind" || k == "metadata" || k == "status"
}

// CheckImmutable compares the resource's immutable paths between old and new.
func CheckImmutable(r *Resource, obj, old runtime.Object) field.ErrorList {
	if len(r.Immutable) == 0 {
		return nil
	}
	n, err1 := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	o, err2 := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
	if err1 != nil || err2 != nil {
		return nil
	}
	var errs field.ErrorList
	for _, p := range r.Immutable {
		parts := strings.Split(p, ".")
		nv, _, _ := unstructured.NestedFieldNoCopy(n, parts...)
		ov, _, _ := unstructured.NestedFieldNoCopy(o, parts...)
		if !equality.Semantic.DeepEqual(nv, ov) {
			errs = append(errs, field.Invalid(field.NewPath(parts[0], parts[1:]...), nv, "field is immutable"))
		}
	}
	return errs
}
