package serviceaccount

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDefaultsInActiveNamespacesOnly(t *testing.T) {
	now := metav1.Now()
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "live"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dying", DeletionTimestamp: &now}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: RootCAConfigMap, Namespace: "live"}, Data: map[string]string{CAKey: "old", "x": "y"}},
	)
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	fctx := &framework.Context{Factory: framework.NewFactory(clients, 0), Clients: clients, Workers: 2,
		Options: framework.Options{RootCAData: []byte("CA")}}
	sa, err := NewServiceAccounts(fctx)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewRootCAPublisher(fctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fctx.Factory.Start(ctx)
	go sa.Run(ctx)
	go ca.Run(ctx)

	eventually(t, "default service account in live", func() error {
		_, err := cs.CoreV1().ServiceAccounts("live").Get(ctx, DefaultName, metav1.GetOptions{})
		return err
	})
	eventually(t, "kube-root-ca.crt corrected in live", func() error {
		cm, err := cs.CoreV1().ConfigMaps("live").Get(ctx, RootCAConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cm.Data) != 1 || cm.Data[CAKey] != "CA" || cm.Annotations[DescriptionAnnotation] == "" {
			return fmt.Errorf("%+v", cm)
		}
		return nil
	})
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both in a new namespace", func() error {
		if _, err := cs.CoreV1().ServiceAccounts("new").Get(ctx, DefaultName, metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := cs.CoreV1().ConfigMaps("new").Get(ctx, RootCAConfigMap, metav1.GetOptions{})
		return err
	})
	if err := cs.CoreV1().ServiceAccounts("new").Delete(ctx, DefaultName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "service account made again", func() error {
		_, err := cs.CoreV1().ServiceAccounts("new").Get(ctx, DefaultName, metav1.GetOptions{})
		return err
	})
	time.Sleep(100 * time.Millisecond)
	if _, err := cs.CoreV1().ServiceAccounts("dying").Get(ctx, DefaultName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("service account made in a terminating namespace: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("dying").Get(ctx, RootCAConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-root-ca.crt made in a terminating namespace: %v", err)
	}
}
