// Package serviceaccount keeps in every active namespace of every cluster
// the objects pods rely on: the "default" ServiceAccount (recreated when
// deleted) and the kube-root-ca.crt ConfigMap holding the CA that verifies
// the API server (restored when edited or deleted), as upstream's
// serviceaccount and root-ca-cert-publisher controllers.
package serviceaccount

import (
	"context"
	"errors"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultName is the service account every namespace gets.
const DefaultName = "default"

// namespaceKeys enqueues the namespace of every namespace event, and of
// events about objects named name.
func namespaceHandlers(q *framework.Queue, nss *framework.Informer[*corev1.Namespace], objects interface {
	AddEventHandler(cache.ResourceEventHandler)
}, name string) {
	nss.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    q.EnqueueObject,
		UpdateFunc: func(_, o any) { q.EnqueueObject(o) },
	})
	byName := func(o any) {
		m := framework.ObjectFromEvent(o)
		if m == nil {
			if k, ok := framework.KeyFromEvent(o); ok && k.Name == name {
				q.Enqueue(framework.Key{Cluster: k.Cluster, Name: k.Namespace})
			}
			return
		}
		if m.GetName() == name {
			q.Enqueue(framework.Key{Cluster: framework.ClusterOf(m), Name: m.GetNamespace()})
		}
	}
	objects.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    byName,
		UpdateFunc: func(_, o any) { byName(o) },
		DeleteFunc: byName,
	})
}

// active is the namespace if it is there and not being deleted.
func active(nss *framework.Informer[*corev1.Namespace], k framework.Key) *corev1.Namespace {
	ns, err := nss.Get(k.Cluster, "", k.Name)
	if err != nil || ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	return ns
}

// ignorable are the errors of writing into a namespace or cluster that is
// going away: the next event tells what to do.
func ignorable(err error) bool {
	return apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) ||
		apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

// ServiceAccounts makes sure of each namespace's "default" ServiceAccount.
type ServiceAccounts struct {
	ctx     *framework.Context
	nss     *framework.Informer[*corev1.Namespace]
	sas     *framework.Informer[*corev1.ServiceAccount]
	queue   *framework.Queue
	workers int
}

// NewServiceAccounts is the "serviceaccount" controller.
func NewServiceAccounts(c *framework.Context) (framework.Runnable, error) {
	s := &ServiceAccounts{ctx: c, nss: c.Factory.Namespaces(), sas: c.Factory.ServiceAccounts(), workers: c.Workers}
	s.queue = framework.NewQueue("serviceaccount", s.sync)
	namespaceHandlers(s.queue, s.nss, s.sas, DefaultName)
	return s, nil
}

// Run implements framework.Runnable.
func (s *ServiceAccounts) Run(ctx context.Context) {
	s.queue.Run(ctx, s.workers, s.nss.HasSynced, s.sas.HasSynced)
}

func (s *ServiceAccounts) sync(ctx context.Context, k framework.Key) error {
	if active(s.nss, k) == nil {
		return nil
	}
	if _, err := s.sas.Get(k.Cluster, k.Name, DefaultName); err == nil {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DefaultName, Namespace: k.Name}}
	_, err := s.ctx.Clients.For(k.Cluster).CoreV1().ServiceAccounts(k.Name).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !ignorable(err) {
		return err
	}
	return nil
}

// RootCAConfigMap is the ConfigMap every namespace gets, and CAKey its key.
const (
	RootCAConfigMap = "kube-root-ca.crt"
	CAKey           = "ca.crt"
	// DescriptionAnnotation says what the ConfigMap is for.
	DescriptionAnnotation = "kubernetes.io/description"
	description           = "The CA bundle that verifies the API server's certificate, for clients in pods that reach it " +
		"through kubernetes.default.svc or the service IP."
)

// RootCAPublisher makes sure of each namespace's kube-root-ca.crt.
type RootCAPublisher struct {
	ctx     *framework.Context
	nss     *framework.Informer[*corev1.Namespace]
	cms     *framework.Informer[*corev1.ConfigMap]
	queue   *framework.Queue
	ca      string
	workers int
}

// NewRootCAPublisher is the "root-ca-cert-publisher" controller. Every
// cluster is served with the same certificate, so every cluster's
// namespaces get the same CA: Options.RootCAData.
func NewRootCAPublisher(c *framework.Context) (framework.Runnable, error) {
	if len(c.Options.RootCAData) == 0 {
		return nil, errors.New("no root CA: the kubeconfig has no certificate-authority data and none was given")
	}
	p := &RootCAPublisher{ctx: c, nss: c.Factory.Namespaces(), cms: c.Factory.ConfigMaps(),
		ca: string(c.Options.RootCAData), workers: c.Workers}
	p.queue = framework.NewQueue("root-ca-cert-publisher", p.sync)
	namespaceHandlers(p.queue, p.nss, p.cms, RootCAConfigMap)
	return p, nil
}

// Run implements framework.Runnable.
func (p *RootCAPublisher) Run(ctx context.Context) {
	p.queue.Run(ctx, p.workers, p.nss.HasSynced, p.cms.HasSynced)
}

func (p *RootCAPublisher) sync(ctx context.Context, k framework.Key) error {
	if active(p.nss, k) == nil {
		return nil
	}
	client := p.ctx.Clients.For(k.Cluster).CoreV1().ConfigMaps(k.Name)
	cur, err := p.cms.Get(k.Cluster, k.Name, RootCAConfigMap)
	if apierrors.IsNotFound(err) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCAConfigMap, Namespace: k.Name,
				Annotations: map[string]string{DescriptionAnnotation: description}},
			Data: map[string]string{CAKey: p.ca},
		}
		if _, err := client.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !ignorable(err) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(cur.Data) == 1 && cur.Data[CAKey] == p.ca && len(cur.BinaryData) == 0 &&
		cur.Annotations[DescriptionAnnotation] != "" {
		return nil
	}
	cm := cur.DeepCopy()
	framework.StripCluster(cm)
	cm.Data = map[string]string{CAKey: p.ca}
	cm.BinaryData = nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	if cm.Annotations[DescriptionAnnotation] == "" {
		cm.Annotations[DescriptionAnnotation] = description
	}
	if _, err := client.Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err // a conflict is retried; the informer has the newer object by then
	}
	return nil
}
